package accountdata

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"testing"

	"github.com/myelin-chat/myelin/internal/rooms"
)

// longIgnoreLists stores for every user an ignore list of n users.
type longIgnoreLists struct {
	Store // the rest is unused
	n     int
}

func (l longIgnoreLists) GetAccountData(_ context.Context, userID, _, _ string) (string, error) {
	users := map[string]struct{}{}
	for i := range l.n {
		users[fmt.Sprintf("@spammer%d-%s", i, userID[1:])] = struct{}{}
	}
	b, err := json.Marshal(map[string]any{"ignored_users": users})
	return string(b), err
}

// The ignore lists' cache holds no more memory than its bound when
// filled with long lists: it was bounded at 100,000 users, whatever
// their lists' lengths.
func TestIgnoredCacheBoundedByBytes(t *testing.T) {
	const bound = 2 << 20
	s := New(longIgnoreLists{n: 5000}, rooms.NewStreamGen(0, nil), nil, WithIgnoredCacheBytes(bound))
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	before := int64(m.HeapAlloc)
	for i := range 40 {
		if _, err := s.IgnoredUsers(context.Background(), fmt.Sprintf("@user%d:hs1.test", i)); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&m)
	held := int64(m.HeapAlloc) - before
	if n := s.ignored.Len(); n < 2 || n >= 40 {
		t.Fatalf("%d ignore lists cached of 40", n)
	}
	if held > bound*6/5 {
		t.Fatalf("ignore lists' cache holds %d bytes, bound %d", held, bound)
	}
	t.Logf("%d lists, %d bytes held for a bound of %d", s.ignored.Len(), held, bound)
	runtime.KeepAlive(s)
}
