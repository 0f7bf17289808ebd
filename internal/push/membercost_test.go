package push

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/myelin-chat/myelin/internal/cache"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
	"github.com/myelin-chat/myelin/internal/store"
)

// liveHeap is the heap in use after a full collection.
func liveHeap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// bigMemberState is a room of n members, half of them local, with
// strings of its own as read from the database.
func bigMemberState(room, n int) *memberState {
	m := &memberState{state: make(rooms.StateMap, n), localJoined: map[string]bool{}}
	for i := range n {
		u := fmt.Sprintf("@user%d-%d:%s", room, i, []string{"hs1.test", "elsewhere.test"}[i%2])
		m.state[roommodel.StateKey{Type: "m.room.member", StateKey: u}] = int64(i)
		if i%2 == 0 {
			m.localJoined[u] = true
			m.members.local = append(m.members.local, u)
		}
	}
	m.members.joined = n
	return m
}

// The member cache holds no more memory than its bound when filled with
// big rooms: bounded at 200,000 rooms and costed by their local members,
// it left their state maps, the bulk, uncounted.
func TestMemberCacheBoundedByBytes(t *testing.T) {
	const bound = 4 << 20
	c := cache.NewLRU[string, *memberState](bound)
	before := liveHeap()
	for i := range 40 {
		m := bigMemberState(i, 4000)
		c.PutCost(fmt.Sprint(i), m, memberStateCost(m))
	}
	held := liveHeap() - before
	if n := c.Len(); n < 2 || n >= 40 {
		t.Fatalf("%d rooms cached of 40", n)
	}
	if held > bound*6/5 {
		t.Fatalf("member cache holds %d bytes, bound %d", held, bound)
	}
	t.Logf("%d rooms, %d bytes held for a bound of %d", c.Len(), held, bound)
	runtime.KeepAlive(c)
}

// The unread counts' cache holds no more memory than its bound however
// many users and rooms pass through: it was bounded at 200,000 pairs.
func TestUnreadCacheBoundedByBytes(t *testing.T) {
	const bound = 1 << 20
	c := cache.NewLRU[countsKey, []store.ThreadCounts](bound)
	before := liveHeap()
	for i := range 100_000 {
		k := countsKey{fmt.Sprintf("@user%d:hs1.test", i), fmt.Sprintf("!room%d-abcdefghijkl:hs1.test", i)}
		rows := []store.ThreadCounts{{Notifications: 3}, {ThreadID: fmt.Sprintf("$thread%d-abcdefghijklmnopqrstuvwxyz0123456789", i), Notifications: 1}}
		c.PutCost(k, rows, unreadCost(k, rows))
	}
	held := liveHeap() - before
	if n := c.Len(); n < 1000 || n >= 100_000 {
		t.Fatalf("%d counts cached of 100,000", n)
	}
	if held > bound*6/5 {
		t.Fatalf("unread counts' cache holds %d bytes, bound %d", held, bound)
	}
	t.Logf("%d pairs, %d bytes held for a bound of %d", c.Len(), held, bound)
	runtime.KeepAlive(c)
}
