package admin_test

import (
	"context"
	"net/http"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestAdminBlockRefusesFederatedInvites: a room blocked on hs2 (which
// does not know it) refuses invites of hs2's users from hs1, as Synapse
// does; once unblocked the invite goes through.
func TestAdminBlockRefusesFederatedInvites(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, func(_ int, c *config.Config) { c.Registration.SharedSecret = admSecret },
		func(t *testing.T, net *testserver.Network) {
			ctx := context.Background()
			hs1, hs2 := net.Servers[0], net.Servers[1]
			alice := hs1.Register("alice", "password1234")
			bob := hs2.Register("bob", "password1234")
			admin := hs2.RegisterAdmin("root", "password1234")
			created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
			if err != nil {
				t.Fatal(err)
			}
			block := admRooms + "/" + created.RoomID.String() + "/block"
			status, body := hs2.Do(t, "PUT", block, admin.AccessToken, map[string]any{"block": true})
			testserver.WantStatus(t, "block", status, body, http.StatusOK)
			if _, err := alice.InviteUser(ctx, created.RoomID, &mautrix.ReqInviteUser{UserID: bob.UserID}); err == nil {
				t.Fatal("hs2 accepted an invite into a room it blocked")
			}
			resp, err := bob.SyncRequest(ctx, 0, "", "", false, event.PresenceOnline)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := resp.Rooms.Invite[created.RoomID]; ok {
				t.Fatal("the refused invite reached bob's sync")
			}
			status, body = hs2.Do(t, "PUT", block, admin.AccessToken, map[string]any{"block": false})
			testserver.WantStatus(t, "unblock", status, body, http.StatusOK)
			if _, err := alice.InviteUser(ctx, created.RoomID, &mautrix.ReqInviteUser{UserID: id.UserID(bob.UserID)}); err != nil {
				t.Fatalf("invite after unblocking: %v", err)
			}
		})
}
