package clientsync

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/myelin-chat/myelin/internal/clientevent"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// liveHeap is the heap in use after a full collection.
func liveHeap() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// bigRooms answers as a database would for rooms and users with size
// members and memberships each: fresh strings on every call, so that
// what a cache holds is its own.
type bigRooms struct {
	Store // the rest is unused
	size  int
}

func (b bigRooms) ids(prefix, key string) []string {
	ids := make([]string, b.size)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s%s-%d:hs1.test", prefix, key, i)
	}
	return ids
}

func (b bigRooms) JoinedMembers(_ context.Context, roomID string) ([]string, error) {
	return b.ids("@", roomID[1:]), nil
}

func (b bigRooms) MembershipsOf(_ context.Context, userID string, _ ...string) ([]store.RoomMembership, error) {
	ms := make([]store.RoomMembership, b.size)
	for i, id := range b.ids("!", userID[1:]) {
		ms[i] = store.RoomMembership{RoomID: id, Membership: fmt.Sprint("join"), EventNID: int64(i), StreamPos: int64(i)}
	}
	return ms, nil
}

func (b bigRooms) RoomsWithEvents(_ context.Context, after, _ int64) ([]string, error) {
	return b.ids("!", fmt.Sprint(after)), nil
}

// checkHeld fails t if filling a cache through fill kept more than its
// bound (a fifth over: the estimate's allowance), or kept too little to
// be a cache.
func checkHeld(t *testing.T, what string, bound int, fill func(), held func() int) {
	t.Helper()
	before := liveHeap()
	fill()
	got := liveHeap() - before
	if n := held(); n < 2 {
		t.Errorf("%s: %d entries cached", what, n)
	}
	if got > int64(bound)*6/5 {
		t.Errorf("%s holds %d bytes, bound %d", what, got, bound)
	}
	t.Logf("%s: %d entries, %d bytes held for a bound of %d", what, held(), got, bound)
}

// /sync's caches hold no more memory than their bounds when filled with
// big rooms and users in many rooms. They were bounded by their number
// of IDs before (200,000 joined users; 2^18 memberships, some 25 MB),
// whatever the IDs' length.
func TestSyncCachesBoundedByBytes(t *testing.T) {
	const bound = 2 << 20
	src := bigRooms{size: 3000}
	n := NewNotifier(rooms.NewStreamGen(0, nil), src, "hs1.test", nil, WithJoinedCacheBytes(bound))
	checkHeld(t, "joined users", bound, func() {
		for i := range 40 {
			n.loadJoined([]string{fmt.Sprintf("!room%d:hs1.test", i)})
		}
	}, n.joined.Len)

	engine := rooms.New(nil, rooms.NewStreamGen(0, nil), nil, rooms.Options{})
	s := New(src, engine, n, clientevent.Renderer{}, Sources{}, WithCacheBytes(2*bound))
	ctx := context.Background()
	checkHeld(t, "memberships", bound, func() {
		for i := range 40 {
			if _, err := s.membershipsOf(ctx, fmt.Sprintf("@user%d:hs1.test", i), nil); err != nil {
				t.Fatal(err)
			}
		}
	}, s.memberships.Len)
	checkHeld(t, "rooms with events", bound, func() {
		for i := range int64(40) {
			if _, err := s.roomsWithEvents(ctx, i, i+1); err != nil {
				t.Fatal(err)
			}
		}
	}, s.active.Len)
	runtime.KeepAlive(n)
	runtime.KeepAlive(s)
}
