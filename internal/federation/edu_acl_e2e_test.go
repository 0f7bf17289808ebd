package federation_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
	"github.com/myelin-chat/myelin/internal/testserver/peer"
)

// TestEDUsFromACLDeniedServerIgnored: once a room's m.room.server_acl
// denies a server, its typing notifications and read receipts for that
// room are ignored (spec v1.13, MSC4163; Synapse's
// check_server_matches_acl on typing and receipt EDUs), although its
// users are still joined. Before the ACL the same EDUs arrive, so the
// test tells "ignored" from "never handled".
func TestEDUsFromACLDeniedServerIgnored(t *testing.T) {
	peer.EachEngine(t, 1, nil, func(t *testing.T, net *testserver.Network, p *peer.Peer) {
		ctx := context.Background()
		hs1 := net.Servers[0]
		room := p.CreateRoom(t)
		bob := p.UserID("bob")
		room.Create(t, bob, spec.MRoomMember, &bob, map[string]string{"membership": spec.Join})
		alice := peerJoin(t, hs1, p, room, "alice")
		roomID := id.RoomID(room.ID)
		sent, err := alice.SendText(ctx, roomID, "read me")
		if err != nil {
			t.Fatal(err)
		}
		edus := func(edus ...map[string]any) {
			t.Helper()
			body := map[string]any{"origin": p.Name, "origin_server_ts": time.Now().UnixMilli(), "pdus": []any{}, "edus": edus}
			txn := "edu" + strconv.FormatInt(time.Now().UnixNano(), 10)
			if status, raw := p.Request(t, hs1, http.MethodPut, "/_matrix/federation/v1/send/"+txn, body); status != http.StatusOK {
				t.Fatalf("send EDUs: %d %s", status, raw)
			}
		}
		typing := func(user string) map[string]any {
			return map[string]any{"edu_type": "m.typing", "content": map[string]any{"room_id": room.ID, "user_id": user, "typing": true}}
		}
		receipt := func(user string) map[string]any {
			return map[string]any{"edu_type": "m.receipt", "content": map[string]any{room.ID: map[string]any{"m.read": map[string]any{
				user: map[string]any{"event_ids": []string{sent.EventID.String()}, "data": map[string]any{"ts": time.Now().UnixMilli()}}}}}}
		}
		seen := func(r *mautrix.RespSync, user string) (typing, read bool) {
			for _, ev := range testserver.Ephemeral(r, roomID, event.EphemeralEventTyping) {
				for _, u := range ev.Content.AsTyping().UserIDs {
					typing = typing || u.String() == user
				}
			}
			for _, ev := range testserver.Ephemeral(r, roomID, event.EphemeralEventReceipt) {
				if _, ok := (*ev.Content.AsReceipt())[sent.EventID][event.ReceiptTypeRead][id.UserID(user)]; ok {
					read = true
				}
			}
			return typing, read
		}

		// Before the ACL: the creator's typing and receipt arrive.
		edus(typing(room.Creator), receipt(room.Creator))
		testserver.SyncUntil(t, alice, "", "the peer's typing and receipt", func(r *mautrix.RespSync) bool {
			typing, read := seen(r, room.Creator)
			return typing && read
		})

		empty := ""
		acl := room.Create(t, room.Creator, "m.room.server_acl", &empty,
			map[string]any{"allow": []string{"*"}, "deny": []string{p.Name}, "allow_ip_literals": true})
		if verdict := p.Send(t, hs1, acl); verdict[acl.EventID()] != "" {
			t.Fatalf("ACL event refused: %v", verdict)
		}
		testserver.SyncUntil(t, alice, "", "the ACL", func(r *mautrix.RespSync) bool {
			state, timeline := testserver.JoinedEvents(r, roomID)
			for _, ev := range append(state, timeline...) {
				if ev.Type.Type == "m.room.server_acl" {
					return true
				}
			}
			return false
		})

		// After it: bob of the denied server, still joined, types and
		// reads, and neither reaches alice. /send handles EDUs before it
		// answers, so the sync below sees whatever was taken.
		edus(typing(bob), receipt(bob))
		testserver.SyncUntil(t, alice, "", "a sync", func(r *mautrix.RespSync) bool {
			if typing, read := seen(r, bob); typing || read {
				t.Fatalf("EDUs of an ACL-denied server reached alice: typing %v, receipt %v", typing, read)
			}
			return true
		})
	})
}
