package push_test

import (
	"context"
	"slices"
	"testing"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestEvaluationBehindMemberships: the push worker runs behind the
// events, and evaluates each with the members of its room at the event,
// as Synapse (which evaluates before persisting) does: bob, who joined
// after a message, is not notified of it, and carol, who was there and
// left, is. With the members read when the worker came to the event,
// push's TestPostcontentRules notified bob of the room's creation events
// whenever the worker fell behind his join (3 runs in 8 on PostgreSQL
// with synchronous_commit off).
func TestEvaluationBehindMemberships(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice, bob, carol := s.Register("alice", "pw-alice-1"), s.Register("bob", "pw-bob-1"), s.Register("carol", "pw-carol-1")
		room := publicRoom(t, alice, carol)
		before := send(t, alice, room, text("before bob came, while carol was here"))
		join(t, room, bob)
		if _, err := carol.LeaveRoom(ctx, room); err != nil {
			t.Fatal(err)
		}
		after := send(t, alice, room, text("after"))

		notified := func(eventID string) []string {
			t.Helper()
			ev, err := s.Engine().Event(ctx, eventID)
			if err != nil {
				t.Fatal(err)
			}
			users, err := s.Push().NotifiedNow(ctx, ev)
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(users)
			return users
		}
		if got := notified(string(before)); !slices.Equal(got, []string{string(carol.UserID)}) {
			t.Fatalf("the message before bob joined and carol left notifies %v, want carol only", got)
		}
		if got := notified(string(after)); !slices.Equal(got, []string{string(bob.UserID)}) {
			t.Fatalf("the latest message notifies %v, want bob only", got)
		}
	})
}
