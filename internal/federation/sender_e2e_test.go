package federation_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestSenderDeliversBothWays: a message of a local user reaches the other
// server through the sender and its users see it in /sync, in both
// directions.
func TestSenderDeliversBothWays(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		alice, bob, roomID := sendRoom(t, net)
		bobSync, aliceSync := &sendSyncer{c: bob}, &sendSyncer{c: alice}
		for i := 1; i <= 3; i++ {
			if _, err := alice.SendText(ctx, roomID, fmt.Sprintf("hello %d", i)); err != nil {
				t.Fatal(err)
			}
		}
		seen := bobSync.waitMessages(t, roomID, "hello 1", "hello 2", "hello 3")
		if !slices.Equal(seen, []string{"hello 1", "hello 2", "hello 3"}) {
			t.Fatalf("bob's timeline %q, want the three in order", seen)
		}
		if _, err := bob.SendText(ctx, roomID, "hi from hs2"); err != nil {
			t.Fatal(err)
		}
		aliceSync.waitMessages(t, roomID, "hi from hs2")
		// Nothing stays queued once delivered.
		for _, s := range net.Servers {
			other := "hs2.test"
			if s.Config.ServerName == other {
				other = "hs1.test"
			}
			sendPoll(t, s.Config.ServerName+" queue", func() string {
				if n, err := s.Sender().Pending(ctx, other); err != nil || n != 0 {
					return fmt.Sprintf("%d queued (%v)", n, err)
				}
				return ""
			})
		}
	})
}

// TestSenderSurvivesOutageAndRestart: events sent while the destination
// is down are queued durably (they survive a restart of the sending
// server too) and arrive in order once it is back.
func TestSenderSurvivesOutageAndRestart(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2 := net.Servers[0], net.Servers[1]
		alice, bob, roomID := sendRoom(t, net)
		hs2.Stop()
		var want []string
		for i := 1; i <= 5; i++ {
			want = append(want, fmt.Sprintf("while down %d", i))
			if _, err := alice.SendText(ctx, roomID, want[i-1]); err != nil {
				t.Fatal(err)
			}
		}
		sendPoll(t, "hs1 queue", func() string {
			if n, err := hs1.Sender().Pending(ctx, "hs2.test"); err != nil || n != 5 {
				return fmt.Sprintf("%d queued (%v), want 5", n, err)
			}
			return ""
		})
		// The queue is in the database: a restart of hs1 loses nothing.
		hs1.Restart()
		hs2.Restart()
		hs2.Repoint(bob)
		sendPoll(t, "bob's history on hs2", func() string {
			got := sendMessages(t, bob, roomID)
			if !slices.Equal(got, want) {
				return fmt.Sprintf("got %q, want %q", got, want)
			}
			return ""
		})
	})
}

// TestSenderCatchesUp: with more than a transaction's worth queued for a
// destination that was down, the sender sends only the newest event of
// the room and the destination fetches the rest with
// /get_missing_events; it ends up with every event.
func TestSenderCatchesUp(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2 := net.Servers[0], net.Servers[1]
		alice, _, roomID := sendRoom(t, net)
		hs2.Stop()
		var ids []string
		for i := 1; i <= 60; i++ {
			resp, err := alice.SendText(ctx, roomID, fmt.Sprintf("backlog %d", i))
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, resp.EventID.String())
		}
		hs2.Restart()
		sendPoll(t, "hs2 holds every event", func() string {
			evs, err := hs2.Engine().EventsByID(ctx, ids)
			if err != nil || len(evs) != len(ids) {
				return fmt.Sprintf("%d of %d (%v)", len(evs), len(ids), err)
			}
			return ""
		})
		// hs2 may hold everything before hs1 has read its answer.
		sendPoll(t, "hs1 queue", func() string {
			if n, err := hs1.Sender().Pending(ctx, "hs2.test"); err != nil || n != 0 {
				return fmt.Sprintf("%d still queued (%v)", n, err)
			}
			return ""
		})
	})
}

// TestSenderSkipsRoomsItIsNotIn: a local user's membership in a room this
// server does not hold (a rejected invite, stored out of band) has no
// destinations and does not hold up the events after it. (Here the event
// is still cached; read back cold, its unknown room answers M_NOT_FOUND,
// which the sender also treats as "no destinations".)
func TestSenderSkipsRoomsItIsNotIn(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2 := net.Servers[0], net.Servers[1]
		alice, bob, roomID := sendRoom(t, net)
		other, err := bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
		if err != nil {
			t.Fatal(err)
		}
		aliceID := alice.UserID.String()
		leave := sendBuild(t, hs2, hs1, other.RoomID.String(), aliceID, spec.MRoomMember, &aliceID, map[string]string{"membership": spec.Leave})
		if _, err := hs1.Engine().ReceiveOutOfBand(ctx, leave); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.SendText(ctx, roomID, "after the out-of-band leave"); err != nil {
			t.Fatal(err)
		}
		(&sendSyncer{c: bob}).waitMessages(t, roomID, "after the out-of-band leave")
	})
}

// TestSenderDropsStaleTyping: alice types just as hs2 goes down, then
// sends a message. When hs2 is back it gets the message but not the
// typing notification, which is stale by then (Synapse drops it too);
// typing while hs2 is known to be down is not even queued.
func TestSenderDropsStaleTyping(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2 := net.Servers[0], net.Servers[1]
		alice, bob, roomID := sendRoom(t, net)
		hs2.Stop()
		if _, err := alice.UserTyping(ctx, roomID, true, time.Minute); err != nil {
			t.Fatal(err)
		}
		sendPoll(t, "hs1 noticing hs2 is down", func() string {
			if n, err := hs1.Sender().Failures(ctx, "hs2.test"); err != nil || n == 0 {
				return fmt.Sprintf("%d failures (%v)", n, err)
			}
			return ""
		})
		// Known to be down now: this one is not queued at all.
		if _, err := alice.UserTyping(ctx, roomID, true, time.Minute); err != nil {
			t.Fatal(err)
		}
		types, err := hs1.Sender().QueuedEDUTypes(ctx, "hs2.test")
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(strings.Join(types, " "), "m.typing"); n != 1 {
			t.Fatalf("queued EDUs for hs2: %v, want the one typing from before the outage was noticed", types)
		}
		if _, err := alice.SendText(ctx, roomID, "after typing"); err != nil {
			t.Fatal(err)
		}
		hs2.Restart()
		hs2.Repoint(bob)
		sendPoll(t, "the message on hs2", func() string {
			if got := sendMessages(t, bob, roomID); !slices.Contains(got, "after typing") {
				return fmt.Sprintf("bob sees %q", got)
			}
			return ""
		})
		// hs2 may have fetched the message itself (backfill): wait until
		// hs1's queue for it is empty, delivered or dropped.
		sendPoll(t, "hs1's queue for hs2 drained", func() string {
			n, err := hs1.Sender().Pending(ctx, "hs2.test")
			types, err2 := hs1.Sender().QueuedEDUTypes(ctx, "hs2.test")
			if err != nil || err2 != nil || n != 0 || len(types) != 0 {
				return fmt.Sprintf("%d PDUs and EDUs %v queued (%v, %v)", n, types, err, err2)
			}
			return ""
		})
		// Whatever hs1 delivered is applied by now (hs2 answers a
		// transaction once it is processed): alice must not be typing.
		resp, err := bob.FullSyncRequest(ctx, mautrix.ReqSync{})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range testserver.Ephemeral(resp, roomID, event.EphemeralEventTyping) {
			if ids := ev.Content.AsTyping().UserIDs; len(ids) > 0 {
				t.Fatalf("stale typing delivered: %v", ids)
			}
		}
	})
}
