package federation_test

import (
	"context"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// syncUntil long-polls c's /sync from since until ok accepts a response,
// and returns that response's next_batch; it fails after a deadline.
func syncUntil(t *testing.T, c *mautrix.Client, since, what string, ok func(*mautrix.RespSync) bool) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := c.FullSyncRequest(context.Background(), mautrix.ReqSync{Timeout: 1000, Since: since})
		if err != nil {
			t.Fatalf("%s: sync: %v", c.UserID, err)
		}
		since = resp.NextBatch
		if ok(resp) {
			return since
		}
	}
	t.Fatalf("%s never saw %s", c.UserID, what)
	return ""
}

func ephemeralOf(resp *mautrix.RespSync, roomID id.RoomID, typ event.Type) []*event.Event {
	room, ok := resp.Rooms.Join[roomID]
	if !ok {
		return nil
	}
	var out []*event.Event
	for _, ev := range room.Ephemeral.Events {
		if ev.Type == typ {
			_ = ev.Content.ParseRaw(ev.Type)
			out = append(out, ev)
		}
	}
	return out
}

// TestTypingAndReceiptsOverFederation: alice@hs1 types and reads, and
// bob@hs2 sees both in his /sync's ephemeral events; bob's receipt
// reaches alice; a private receipt stays on its server.
func TestTypingAndReceiptsOverFederation(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2 := net.Servers[0], net.Servers[1]
		alice := hs1.Register("alice", "password1234")
		bob := hs2.Register("bob", "password1234")
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		room := created.RoomID
		if _, err := bob.JoinRoom(ctx, room.String(), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
			t.Fatal(err)
		}
		waitForMembership(t, alice, room, "@bob:hs2.test", event.MembershipJoin)
		bobSince := syncUntil(t, bob, "", "his room", func(r *mautrix.RespSync) bool { return r.Rooms.Join[room] != nil })
		aliceSince := syncUntil(t, alice, "", "her room", func(r *mautrix.RespSync) bool { return r.Rooms.Join[room] != nil })

		if _, err := alice.UserTyping(ctx, room, true, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		bobSince = syncUntil(t, bob, bobSince, "alice typing", func(r *mautrix.RespSync) bool {
			for _, ev := range ephemeralOf(r, room, event.EphemeralEventTyping) {
				if ids := ev.Content.AsTyping().UserIDs; len(ids) == 1 && ids[0] == alice.UserID {
					return true
				}
			}
			return false
		})
		if _, err := alice.UserTyping(ctx, room, false, 0); err != nil {
			t.Fatal(err)
		}
		bobSince = syncUntil(t, bob, bobSince, "alice stop typing", func(r *mautrix.RespSync) bool {
			evs := ephemeralOf(r, room, event.EphemeralEventTyping)
			return len(evs) > 0 && len(evs[len(evs)-1].Content.AsTyping().UserIDs) == 0
		})

		sent, err := alice.SendText(ctx, room, "read me")
		if err != nil {
			t.Fatal(err)
		}
		waitForText(t, bob, room, "read me")
		if err := bob.SendReceipt(ctx, room, sent.EventID, event.ReceiptTypeReadPrivate, nil); err != nil {
			t.Fatal(err)
		}
		if err := bob.SendReceipt(ctx, room, sent.EventID, event.ReceiptTypeRead, nil); err != nil {
			t.Fatal(err)
		}
		sawPrivate := false
		syncUntil(t, alice, aliceSince, "bob's receipt", func(r *mautrix.RespSync) bool {
			for _, ev := range ephemeralOf(r, room, event.EphemeralEventReceipt) {
				receipts := *ev.Content.AsReceipt()
				if _, ok := receipts[sent.EventID][event.ReceiptTypeReadPrivate][bob.UserID]; ok {
					sawPrivate = true
				}
				if _, ok := receipts[sent.EventID][event.ReceiptTypeRead][bob.UserID]; ok {
					return true
				}
			}
			return false
		})
		if sawPrivate {
			t.Fatal("bob's private receipt reached alice")
		}
	})
}
