package federation_test

import (
	"context"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/myelin-chat/myelin/internal/testserver"
)

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
		bobSince := testserver.SyncUntil(t, bob, "", "his room", func(r *mautrix.RespSync) bool { return r.Rooms.Join[room] != nil })
		aliceSince := testserver.SyncUntil(t, alice, "", "her room", func(r *mautrix.RespSync) bool { return r.Rooms.Join[room] != nil })

		if _, err := alice.UserTyping(ctx, room, true, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		bobSince = testserver.SyncUntil(t, bob, bobSince, "alice typing", func(r *mautrix.RespSync) bool {
			for _, ev := range testserver.Ephemeral(r, room, event.EphemeralEventTyping) {
				if ids := ev.Content.AsTyping().UserIDs; len(ids) == 1 && ids[0] == alice.UserID {
					return true
				}
			}
			return false
		})
		if _, err := alice.UserTyping(ctx, room, false, 0); err != nil {
			t.Fatal(err)
		}
		bobSince = testserver.SyncUntil(t, bob, bobSince, "alice stop typing", func(r *mautrix.RespSync) bool {
			evs := testserver.Ephemeral(r, room, event.EphemeralEventTyping)
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
		testserver.SyncUntil(t, alice, aliceSince, "bob's receipt", func(r *mautrix.RespSync) bool {
			for _, ev := range testserver.Ephemeral(r, room, event.EphemeralEventReceipt) {
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
