package federation_test

import (
	"context"
	"net/http"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestFederatedInvitePermission: an invite from another server meets the
// invitee's invite permission on the invitee's server: blocked (MSC4155
// blocked_servers, or spec v1.18's default_action "block") is refused
// with 403 M_INVITE_BLOCKED, which the inviter's server passes on to its
// client; ignored is accepted (the inviter gets 200) but kept out of the
// invitee's /sync until the lists are gone.
func TestFederatedInvitePermission(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2 := net.Servers[0], net.Servers[1]
		alice := hs1.Register("alice", "pw-alice")
		bob := hs2.Register("bob", "pw-bob")
		bobID := id.UserID(hs2.UserID("bob"))
		const lists = "org.matrix.msc4155.invite_permission_config"
		set := func(typ string, content map[string]any) {
			t.Helper()
			if err := bob.SetAccountData(ctx, typ, content); err != nil {
				t.Fatal(err)
			}
		}
		invited := func(room id.RoomID) bool {
			t.Helper()
			resp, err := bob.SyncRequest(ctx, 0, "", "", true, "")
			if err != nil {
				t.Fatal(err)
			}
			_, ok := resp.Rooms.Invite[room]
			return ok
		}
		room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{})
		if err != nil {
			t.Fatal(err)
		}

		set(lists, map[string]any{"blocked_servers": []string{"hs1.test"}})
		_, err = alice.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: bobID})
		testserver.WantHTTPError(t, "invite blocked by server", err, http.StatusForbidden, "M_INVITE_BLOCKED")
		if err := alice.StateEvent(ctx, room.RoomID, event.StateMember, bobID.String(), &struct{}{}); err == nil {
			t.Fatal("a blocked invite made it into the room")
		}

		set(lists, map[string]any{"ignored_servers": []string{"hs1.*"}})
		if _, err := alice.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: bobID}); err != nil {
			t.Fatalf("an ignored invite must be accepted: %v", err)
		}
		if invited(room.RoomID) {
			t.Fatal("the ignored invite is in bob's sync")
		}
		set(lists, map[string]any{})
		if !invited(room.RoomID) {
			t.Fatal("the invite is not shown once the lists are gone (was it received?)")
		}

		second, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{})
		if err != nil {
			t.Fatal(err)
		}
		set("m.invite_permission_config", map[string]any{"default_action": "block"})
		_, err = alice.InviteUser(ctx, second.RoomID, &mautrix.ReqInviteUser{UserID: bobID})
		testserver.WantHTTPError(t, "invite with default_action block", err, http.StatusForbidden, "M_INVITE_BLOCKED")
		if invited(room.RoomID) {
			t.Fatal("the earlier invite still shows while bob blocks all invites")
		}
		set("m.invite_permission_config", map[string]any{})
		if _, err := alice.InviteUser(ctx, second.RoomID, &mautrix.ReqInviteUser{UserID: bobID}); err != nil {
			t.Fatalf("invite after lifting the block: %v", err)
		}
		if !invited(second.RoomID) {
			t.Fatal("the new invite is not in bob's sync")
		}
	})
}
