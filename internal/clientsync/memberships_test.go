package clientsync

import (
	"context"
	"fmt"
	"testing"

	"github.com/myelin-chat/myelin/internal/clientevent"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// countedMemberships is bigRooms counting MembershipsOf queries.
type countedMemberships struct {
	bigRooms
	queries int
}

func (c *countedMemberships) MembershipsOf(ctx context.Context, userID string, ms ...string) ([]store.RoomMembership, error) {
	c.queries++
	return c.bigRooms.MembershipsOf(ctx, userID, ms...)
}

// TestWokenSyncQueriesNoMemberships: more long-polls than the
// memberships cache holds (at 10,000 users in the scale curve, 1,000
// pollers of 10 rooms each against a cache of some 850) each read
// their memberships once: the woken pass of a request uses what the
// request read before its wait, and the client's next /sync, which
// follows the answer, finds it in the cache again. An LRU alone, the
// pollers coming round in turn, had let each list go before its next
// use: every pass queried (9 % of the server's CPU at 10,000 users).
func TestWokenSyncQueriesNoMemberships(t *testing.T) {
	ctx := context.Background()
	st := &countedMemberships{bigRooms: bigRooms{size: 10}}
	stream := rooms.NewStreamGen(10, nil)
	engine := rooms.New(nil, stream, nil, rooms.Options{})
	one := membershipsCost("@user0:hs1.test", make([]store.RoomMembership, 10))
	s := New(st, engine, nil, clientevent.Renderer{}, Sources{}, WithCacheBytes(2*one)) // one user's list
	const pollers = 5
	known := make([]*userMemberships, pollers)
	user := func(i int) string { return fmt.Sprintf("@user%d:hs1.test", i) }
	pass := func(i int, k *userMemberships) {
		t.Helper()
		ms, err := s.membershipsAt(ctx, user(i), stream.Current(), k)
		if err != nil || len(ms) != 10 {
			t.Fatalf("%s: %d memberships, %v", user(i), len(ms), err)
		}
	}
	for i := range pollers { // every poller's first pass, then it waits
		known[i] = &userMemberships{}
		pass(i, known[i])
	}
	if st.queries != pollers {
		t.Fatalf("%d queries for %d first passes", st.queries, pollers)
	}
	st.queries = 0
	for i := range pollers { // a message wakes them all, in turn
		pass(i, known[i])           // the woken pass
		pass(i, &userMemberships{}) // the client's next /sync
	}
	if st.queries != 0 {
		t.Fatalf("%d membership queries for %d woken /syncs whose memberships did not change", st.queries, pollers)
	}
	// Without a request's own list, a user the cache let go is asked again.
	pass(0, nil)
	if st.queries != 1 {
		t.Fatalf("%d queries for a user the cache let go", st.queries)
	}
}
