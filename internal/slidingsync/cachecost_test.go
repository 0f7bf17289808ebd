package slidingsync

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/myelin-chat/myelin/internal/clientevent"
)

// The room types' cache holds no more memory than its bound however many
// rooms pass through: it was bounded at 2^18 rooms, some 40 MB.
func TestRoomTypesCacheBoundedByBytes(t *testing.T) {
	const bound = 1 << 20
	s := New(nil, nil, nil, clientevent.Renderer{}, nil, WithRoomTypesCacheBytes(bound))
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	before := int64(m.HeapAlloc)
	space := "m.space"
	for i := range 100_000 {
		id := fmt.Sprintf("!room%d-abcdefghijklmnop:hs1.test", i)
		var t *string
		if i%10 == 0 {
			t = &space
		}
		s.roomTypes.PutCost(id, t, roomTypeCost(id, t))
	}
	runtime.GC()
	runtime.ReadMemStats(&m)
	held := int64(m.HeapAlloc) - before
	if n := s.roomTypes.Len(); n < 1000 || n >= 100_000 {
		t.Fatalf("%d room types cached of 100,000", n)
	}
	if held > bound*6/5 {
		t.Fatalf("room types' cache holds %d bytes, bound %d", held, bound)
	}
	t.Logf("%d rooms, %d bytes held for a bound of %d", s.roomTypes.Len(), held, bound)
	runtime.KeepAlive(s)
}
