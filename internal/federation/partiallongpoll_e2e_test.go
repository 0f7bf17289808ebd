package federation_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// longPoll is one /sync of c with a long timeout, in the background.
type longPollResult struct {
	resp    *mautrix.RespSync
	err     error
	elapsed time.Duration
}

func longPoll(c *mautrix.Client, since string, timeout time.Duration) <-chan longPollResult {
	out := make(chan longPollResult, 1)
	go func() {
		start := time.Now()
		resp, err := c.FullSyncRequest(context.Background(), mautrix.ReqSync{Timeout: int(timeout.Milliseconds()), Since: since})
		out <- longPollResult{resp, err, time.Since(start)}
	}()
	return out
}

// awaitPoll waits for long polls, the first one given, each of which
// must end well before its own timeout (woken, not timed out), until one
// has the room and ok accepts it. A poll woken for something else (bob's
// presence, the room's unread counts stored behind its last event)
// passes ok nothing or the room without what is awaited: the next poll
// starts from its next_batch.
func awaitPoll(t *testing.T, what string, c *mautrix.Client, ch <-chan longPollResult, roomID id.RoomID, ok func(*mautrix.SyncJoinedRoom) bool) (*mautrix.RespSync, *mautrix.SyncJoinedRoom) {
	t.Helper()
	deadline := time.After(25 * time.Second)
	for {
		select {
		case r := <-ch:
			if r.err != nil {
				t.Fatalf("%s: %v", what, r.err)
			}
			if r.elapsed > 20*time.Second {
				t.Fatalf("%s: the long poll ended after %v (timed out, not woken)", what, r.elapsed)
			}
			if room, found := r.resp.Rooms.Join[roomID]; found && room != nil && ok(room) {
				return r.resp, room
			}
			ch = longPoll(c, r.resp.NextBatch, 60*time.Second)
		case <-deadline:
			t.Fatalf("%s: the long poll was not woken with it", what)
		}
	}
}

// TestPartialStateSyncLongPoll: bob of hs2 long-polls /sync right after
// a partial-state join. A message sent meanwhile on hs1 wakes the poll
// (events received during the partial state reach waiting clients), and
// the resync's completion wakes the next one, which sends the room again
// as newly joined: carol's membership, unknown until then, in its state
// and the timeline limited (see TestPartialStateCompletionResent).
func TestPartialStateSyncLongPoll(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, partialJoins, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		p := joinPartial(t, net)
		roomID, alice, carol, bob, release := p.roomID, p.alice, p.carol, p.bob, p.release
		since := ""
		// The initial sync, as a client does right after joining.
		resp, err := bob.FullSyncRequest(ctx, mautrix.ReqSync{Since: since})
		if err != nil {
			t.Fatal(err)
		}
		since = resp.NextBatch
		poll := longPoll(bob, since, 60*time.Second)
		time.Sleep(200 * time.Millisecond) // let the poll start waiting
		if _, err := alice.SendText(ctx, roomID, "while bob waits"); err != nil {
			t.Fatal(err)
		}
		carolKey := roommodel.StateKey{Type: spec.MRoomMember, StateKey: carol.UserID.String()}
		woken, _ := awaitPoll(t, "poll during the partial state", bob, poll, roomID, func(room *mautrix.SyncJoinedRoom) bool {
			if slices.Contains(stateKeys(room.State.Events, room.Timeline.Events), carolKey) {
				t.Fatal("carol's membership reached bob before the resync")
			}
			for _, ev := range room.Timeline.Events {
				if ev.Type == event.EventMessage && ev.Content.Raw["body"] == "while bob waits" {
					return true
				}
			}
			return false
		})
		poll = longPoll(bob, woken.NextBatch, 60*time.Second)
		time.Sleep(200 * time.Millisecond)
		release()
		_, room := awaitPoll(t, "poll across the completion", bob, poll, roomID, func(room *mautrix.SyncJoinedRoom) bool {
			if len(room.State.Events) == 0 && len(room.Timeline.Events) == 0 {
				return false // its unread counts only
			}
			if !slices.Contains(stateKeys(room.State.Events), carolKey) {
				t.Fatalf("the completed room came without carol's membership in its state: %v", stateKeys(room.State.Events))
			}
			return true
		})
		if !room.Timeline.Limited {
			t.Fatalf("the completed room was not sent again as newly joined: limited %v, state %v", room.Timeline.Limited, stateKeys(room.State.Events))
		}
	})
}
