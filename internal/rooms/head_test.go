package rooms

import (
	"context"
	"testing"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// TestResolvedMembershipIsNoted moves a room's head as state resolution
// does, changing bob's membership with no event of his at a new
// position: readers that saw the stream up to now must learn that his
// memberships changed.
func TestResolvedMembershipIsNoted(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		e, db, _ := newTestEngine(t, dbURL)
		roomID, err := e.CreateRoom(ctx, CreateRequest{Creator: "@alice:a.test"})
		if err != nil {
			t.Fatal(err)
		}
		now := e.Stream().Current()
		alice, err := db.LoadRoomHead(ctx, roomID)
		if err != nil {
			t.Fatal(err)
		}
		// Any stored event does as bob's membership here.
		u := store.HeadUpdate{CurrentState: map[roommodel.StateKey]int64{{Type: spec.MRoomMember, StateKey: "@bob:a.test"}: 1},
			Memberships: map[string]string{"@bob:a.test": spec.Join}, Snapshot: alice.Snapshot, Depth: alice.Depth, Extremities: alice.Extremities}
		if err := e.updateHead(ctx, roomID, u); err != nil {
			t.Fatal(err)
		}
		if e.MembershipUnchanged("@bob:a.test", now) {
			t.Fatal("bob's membership changed by resolution, yet none is reported")
		}
		if !e.MembershipUnchanged("@alice:a.test", now) {
			t.Fatal("alice's membership did not change")
		}
	})
}

// TestWaitReadable: a finished position is not readable while an
// earlier one is in flight, and becomes so once that one finishes.
func TestWaitReadable(t *testing.T) {
	g := NewStreamGen(0, nil)
	a, b := g.Next(), g.Next()
	g.Done(b)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if g.WaitReadable(cancelled, b) {
		t.Fatalf("position %d readable while %d is in flight", b, a)
	}
	go g.Done(a)
	if !g.WaitReadable(context.Background(), b) || g.Current() < b {
		t.Fatalf("position %d not readable after %d finished", b, a)
	}
}
