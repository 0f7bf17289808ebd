package rooms

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
)

// liveHeap is the heap in use after a full collection.
func liveHeap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// bigState is the state of a room with n members, each key's strings
// its own (as read from the database: the worst case for sharing).
func bigState(seed, n int) StateMap {
	s := make(StateMap, n+1)
	s[roommodel.StateKey{Type: "m.room.create"}] = 1
	for i := range n {
		s[roommodel.StateKey{Type: "m.room.member", StateKey: fmt.Sprintf("@user%d-%d:example.org", seed, i)}] = int64(i + 2)
	}
	return s
}

// The state cache holds no more memory than its bound when filled with
// the states of big rooms: bounded by a number of entries (500,000), it
// held 43 MB at issue 20's 1,000-user scale step and 89 MB at 10,000.
func TestStateCacheBoundedByBytes(t *testing.T) {
	const bound = 4 << 20
	e := New(nil, NewStreamGen(0, nil), nil, Options{StateCacheBytes: bound})
	before := liveHeap()
	for id := int64(1); id <= 40; id++ {
		e.cacheState(id, bigState(int(id), 5000))
	}
	held := liveHeap() - before
	if n := e.snapshots.Len(); n < 2 || n >= 40 {
		t.Fatalf("%d states cached of 40 of about 440 KB each, bound 4 MiB", n)
	}
	// The estimate may be off a little either way; a fifth over the bound
	// is the allowance.
	if held > bound*6/5 {
		t.Fatalf("state cache holds %d bytes, bound %d", held, bound)
	}
	t.Logf("%d states, %d bytes held for a bound of %d", e.snapshots.Len(), held, bound)
	runtime.KeepAlive(e)
}
