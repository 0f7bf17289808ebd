package clientapi_test

import (
	"context"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestPresenceChangesWakeLongPolls: bob long-polls /sync while alice's
// presence changes; each change wakes him, the second and third too,
// made within a second of the first, which the notifier batches
// (clientsync's PresenceWakeInterval) rather than waking at once.
func TestPresenceChangesWakeLongPolls(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice, bob := s.Register("alice", "pw-alice"), s.Register("bob", "pw-bob")
		testserver.Room(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"}, bob)
		first, err := bob.SyncRequest(ctx, 0, "", "", false, "")
		if err != nil {
			t.Fatal(err)
		}
		since := first.NextBatch
		for _, status := range []string{"one", "two", "three"} {
			since = waitPresence(t, s, bob, since, alice.UserID.String(), status, func() {
				if err := alice.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceOnline, StatusMsg: status}); err != nil {
					t.Error(err)
				}
			})
		}
	})
}

// waitPresence long-polls c's /sync from since, calls change once the
// long-poll waits, and polls on until a response gives user's presence
// with the status message; it returns the next token. A change whose
// wake-up was lost leaves the long-poll waiting out its timeout, which
// fails the test.
func waitPresence(t *testing.T, s *testserver.Server, c *mautrix.Client, since, user, status string, change func()) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		type result struct {
			resp *mautrix.RespSync
			err  error
		}
		done := make(chan result, 1)
		go func() {
			resp, err := c.SyncRequest(context.Background(), 10_000, since, "", false, "")
			done <- result{resp, err}
		}()
		if change != nil {
			for s.Notifier().Waiting() == 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			change()
			change = nil
		}
		r := <-done
		if r.err != nil {
			t.Fatal(r.err)
		}
		since = r.resp.NextBatch
		for _, ev := range r.resp.Presence.Events {
			if msg, _ := ev.Content.Raw["status_msg"].(string); ev.Sender.String() == user && msg == status {
				return since
			}
		}
		if len(r.resp.Presence.Events) == 0 && len(r.resp.Rooms.Join) == 0 {
			// Only a long-poll's timeout answers with nothing: the
			// change never woke it.
			t.Fatalf("%s's long-poll timed out without %s's presence with status %q", c.UserID, user, status)
		}
	}
	t.Fatalf("%s's long-polls never gave %s's presence with status %q", c.UserID, user, status)
	return ""
}
