package clientapi_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// invitedTo reports whether c's initial /sync shows an invite to room.
func invitedTo(t *testing.T, c *mautrix.Client, room id.RoomID) bool {
	t.Helper()
	resp, err := c.SyncRequest(context.Background(), 0, "", "", true, "")
	if err != nil {
		t.Fatal(err)
	}
	_, ok := resp.Rooms.Invite[room]
	return ok
}

func setAccountData(t *testing.T, c *mautrix.Client, typ string, content map[string]any) {
	t.Helper()
	if err := c.SetAccountData(context.Background(), typ, content); err != nil {
		t.Fatalf("set %s: %v", typ, err)
	}
}

// TestInviteBlockingLocal: a user whose m.invite_permission_config has
// default_action "block" (spec v1.18, MSC4380) is not invited by
// /invite, by PUT state m.room.member or by createRoom's invite list
// (403 M_INVITE_BLOCKED; createRoom still makes the room and invites the
// others); an invite that was there before the block is kept out of
// /sync; lifting the block lets invites through and shows them again.
func TestInviteBlockingLocal(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw-alice")
		bob := s.Register("bob", "pw-bob")
		carol := s.Register("carol", "pw-carol")
		bobID := id.UserID(s.UserID("bob"))

		early, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Invite: []id.UserID{bobID}})
		if err != nil {
			t.Fatal(err)
		}
		if !invitedTo(t, bob, early.RoomID) {
			t.Fatal("the invite before the block is not in bob's sync")
		}
		room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{})
		if err != nil {
			t.Fatal(err)
		}

		setAccountData(t, bob, "m.invite_permission_config", map[string]any{"default_action": "block"})
		if invitedTo(t, bob, early.RoomID) {
			t.Fatal("an invite bob now blocks is still in his sync")
		}
		_, err = alice.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: bobID})
		testserver.WantHTTPError(t, "/invite", err, http.StatusForbidden, "M_INVITE_BLOCKED")
		_, err = alice.SendStateEvent(ctx, room.RoomID, event.StateMember, bobID.String(), map[string]any{"membership": "invite"})
		testserver.WantHTTPError(t, "state m.room.member invite", err, http.StatusForbidden, "M_INVITE_BLOCKED")
		// Other users are still invited.
		if _, err := alice.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: id.UserID(s.UserID("carol"))}); err != nil {
			t.Fatalf("inviting carol: %v", err)
		}

		// createRoom: 403, yet the room exists and carol is invited to it.
		before, err := carol.SyncRequest(ctx, 0, "", "", true, "")
		if err != nil {
			t.Fatal(err)
		}
		_, err = alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Invite: []id.UserID{bobID, id.UserID(s.UserID("carol"))}})
		testserver.WantHTTPError(t, "createRoom inviting bob", err, http.StatusForbidden, "M_INVITE_BLOCKED")
		after, err := carol.SyncRequest(ctx, 0, "", "", true, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(after.Rooms.Invite) != len(before.Rooms.Invite)+1 {
			t.Fatalf("carol's invites went from %d to %d, want one more", len(before.Rooms.Invite), len(after.Rooms.Invite))
		}
		joined, err := alice.JoinedRooms(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(joined.JoinedRooms) != 3 {
			t.Fatalf("alice is in %d rooms, want 3 (the createRoom with the blocked invitee made its room)", len(joined.JoinedRooms))
		}

		// The undo: an event without default_action.
		setAccountData(t, bob, "m.invite_permission_config", map[string]any{})
		if !invitedTo(t, bob, early.RoomID) {
			t.Fatal("the earlier invite is not shown again once the block is lifted")
		}
		if _, err := alice.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: bobID}); err != nil {
			t.Fatalf("invite after lifting the block: %v", err)
		}
		if !invitedTo(t, bob, room.RoomID) {
			t.Fatal("the new invite is not in bob's sync")
		}
	})
}

// TestInviteFilteringMSC4155: org.matrix.msc4155.invite_permission_config
// lists: an ignored inviter gets 200 and the invite never shows in the
// invitee's /sync (initial or incremental); a blocked one gets 403
// M_INVITE_BLOCKED; an allowed user passes a blocked server; removing
// the lists restores everything. The server advertises that it applies
// them.
func TestInviteFilteringMSC4155(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw-alice")
		bob := s.Register("bob", "pw-bob")
		carol := s.Register("carol", "pw-carol")
		bobID := id.UserID(s.UserID("bob"))
		const typ = "org.matrix.msc4155.invite_permission_config"

		setAccountData(t, bob, typ, map[string]any{
			"allowed_users":   []string{s.UserID("carol")},
			"ignored_users":   []string{"@ali*:hs1.test"},
			"blocked_servers": []string{"*"},
		})
		first, err := bob.SyncRequest(ctx, 0, "", "", false, "")
		if err != nil {
			t.Fatal(err)
		}

		fromAlice, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := alice.InviteUser(ctx, fromAlice.RoomID, &mautrix.ReqInviteUser{UserID: bobID}); err != nil {
			t.Fatalf("an ignored invite must look accepted to the inviter: %v", err)
		}
		// The invite is in the room's state (other endpoints are not
		// affected), just not in bob's sync.
		st, b := s.Do(t, http.MethodGet, "/_matrix/client/v3/rooms/"+url.PathEscape(fromAlice.RoomID.String())+"/state/m.room.member/"+url.PathEscape(bobID.String()), alice.AccessToken, nil)
		if st != http.StatusOK || b["membership"] != "invite" {
			t.Fatalf("bob's membership in alice's room: %d %v", st, b)
		}
		fromCarol, err := carol.CreateRoom(ctx, &mautrix.ReqCreateRoom{Invite: []id.UserID{bobID}})
		if err != nil {
			t.Fatalf("carol is allowed: %v", err)
		}
		dave := s.Register("dave", "pw-dave")
		daves, err := dave.CreateRoom(ctx, &mautrix.ReqCreateRoom{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = dave.InviteUser(ctx, daves.RoomID, &mautrix.ReqInviteUser{UserID: bobID})
		testserver.WantHTTPError(t, "dave's invite (blocked server)", err, http.StatusForbidden, "M_INVITE_BLOCKED")

		// Incremental sync up to carol's invite: it is there, alice's not.
		var sawAlice bool
		testserver.SyncUntil(t, bob, first.NextBatch, "carol's invite", func(r *mautrix.RespSync) bool {
			_, a := r.Rooms.Invite[fromAlice.RoomID]
			sawAlice = sawAlice || a
			_, c := r.Rooms.Invite[fromCarol.RoomID]
			return c
		})
		if sawAlice {
			t.Fatal("the ignored invite reached bob's incremental sync")
		}
		if invitedTo(t, bob, fromAlice.RoomID) {
			t.Fatal("the ignored invite is in bob's initial sync")
		}
		if !invitedTo(t, bob, fromCarol.RoomID) {
			t.Fatal("carol's allowed invite is not in bob's initial sync")
		}

		setAccountData(t, bob, typ, map[string]any{})
		if _, err := dave.InviteUser(ctx, daves.RoomID, &mautrix.ReqInviteUser{UserID: bobID}); err != nil {
			t.Fatalf("dave's invite after the lists are gone: %v", err)
		}
		if !invitedTo(t, bob, fromAlice.RoomID) || !invitedTo(t, bob, daves.RoomID) {
			t.Fatal("invites not shown once the lists are gone")
		}

		st, b = s.Do(t, http.MethodGet, "/_matrix/client/v3/capabilities", bob.AccessToken, nil)
		testserver.WantStatus(t, "capabilities", st, b, http.StatusOK)
		enforced, _ := b["capabilities"].(map[string]any)["org.matrix.msc4155.invite_permission_config_enforced"].(map[string]any)
		if enforced["enabled"] != true {
			t.Fatalf("capabilities: %v", b)
		}
		st, b = s.Do(t, http.MethodGet, "/_matrix/client/versions", "", nil)
		testserver.WantStatus(t, "versions", st, b, http.StatusOK)
		if f, _ := b["unstable_features"].(map[string]any); f["org.matrix.msc4155"] != true || f["org.matrix.msc4380"] != true {
			t.Fatalf("unstable_features: %v", b["unstable_features"])
		}
	})
}
