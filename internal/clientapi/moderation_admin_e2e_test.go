package clientapi_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testserver"
)

func withAdminSecret(c *config.Config) { c.Registration.SharedSecret = "moderation-test-secret" }

// restrict flips a restriction through spec v1.18's admin endpoint.
func restrict(t *testing.T, s *testserver.Server, admin *mautrix.Client, kind, field, localpart string, on bool) {
	t.Helper()
	st, b := s.Do(t, http.MethodPut, "/_matrix/client/v1/admin/"+kind+"/"+url.PathEscape(s.UserID(localpart)), admin.AccessToken, map[string]any{field: on})
	if st != http.StatusOK || b[field] != on {
		t.Fatalf("admin %s %s=%v: %d %v", kind, localpart, on, st, b)
	}
}

func wantLocked(t *testing.T, what string, st int, b map[string]any) {
	t.Helper()
	testserver.WantError(t, what, st, b, http.StatusUnauthorized, "M_USER_LOCKED")
	if b["soft_logout"] != true {
		t.Fatalf("%s: no soft_logout: %v", what, b)
	}
}

// TestLockedThroughAdminAPI: an account locked by an admin gets 401
// M_USER_LOCKED with soft_logout on optional-auth routes too when it
// sends its token (only /versions answers, as Synapse's allow_locked),
// cannot refresh its token (the refresh token still works once
// unlocked), and unlocking restores everything.
func TestLockedThroughAdminAPI(t *testing.T) {
	testserver.EachEngine(t, withAdminSecret, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		admin := s.RegisterAdmin("root", "pw-root")
		st, reg := s.Do(t, http.MethodPost, "/_matrix/client/v3/register", "", map[string]any{
			"username": "alice", "password": "pw-alice", "auth": map[string]any{"type": "m.login.dummy"}, "refresh_token": true})
		testserver.WantStatus(t, "register", st, reg, http.StatusOK)
		token, _ := reg["access_token"].(string)
		refresh, _ := reg["refresh_token"].(string)
		if token == "" || refresh == "" {
			t.Fatalf("register: %v", reg)
		}
		room, err := admin.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Visibility: "public", RoomAliasName: "lobby"})
		if err != nil {
			t.Fatal(err)
		}
		optional := []string{
			"/_matrix/client/v3/profile/" + url.PathEscape(s.UserID("root")),
			"/_matrix/client/v3/profile/" + url.PathEscape(s.UserID("root")) + "/displayname",
			"/_matrix/client/v3/publicRooms",
			"/_matrix/client/v3/directory/room/" + url.PathEscape("#lobby:hs1.test"),
			"/_matrix/client/v1/room_summary/" + url.PathEscape(room.RoomID.String()),
		}
		for _, p := range optional {
			st, b := s.Do(t, http.MethodGet, p, token, nil)
			if st == http.StatusUnauthorized {
				t.Fatalf("%s before locking: %d %v", p, st, b)
			}
		}

		restrict(t, s, admin, "lock", "locked", "alice", true)
		for _, p := range optional {
			st, b := s.Do(t, http.MethodGet, p, token, nil)
			wantLocked(t, p+" with a locked account's token", st, b)
			// Without a token the route still answers.
			st, b = s.Do(t, http.MethodGet, p, "", nil)
			if st == http.StatusUnauthorized {
				t.Fatalf("%s without a token: %d %v", p, st, b)
			}
		}
		st, b := s.Do(t, http.MethodGet, "/_matrix/client/v3/account/whoami", token, nil)
		wantLocked(t, "whoami", st, b)
		st, b = s.Do(t, http.MethodGet, "/_matrix/client/versions", token, nil)
		testserver.WantStatus(t, "versions", st, b, http.StatusOK)
		st, b = s.Do(t, http.MethodPost, "/_matrix/client/v3/refresh", "", map[string]any{"refresh_token": refresh})
		wantLocked(t, "refresh while locked", st, b)

		restrict(t, s, admin, "lock", "locked", "alice", false)
		st, b = s.Do(t, http.MethodPost, "/_matrix/client/v3/refresh", "", map[string]any{"refresh_token": refresh})
		testserver.WantStatus(t, "refresh after unlocking", st, b, http.StatusOK)
		newToken, _ := b["access_token"].(string)
		st, b = s.Do(t, http.MethodGet, "/_matrix/client/v3/account/whoami", newToken, nil)
		testserver.WantStatus(t, "whoami after unlocking", st, b, http.StatusOK)
		st, b = s.Do(t, http.MethodGet, optional[0], newToken, nil)
		testserver.WantStatus(t, "profile after unlocking", st, b, http.StatusOK)
	})
}

// TestSuspendedThroughAdminAPI: an account suspended by an admin may
// read (sync, messages), leave and redact its own events, but not send,
// join, knock, invite or change its displayname or avatar (403
// M_USER_SUSPENDED); unsuspending restores each.
func TestSuspendedThroughAdminAPI(t *testing.T) {
	testserver.EachEngine(t, withAdminSecret, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		admin := s.RegisterAdmin("root", "pw-root")
		alice := s.Register("alice", "pw-alice")
		s.Register("bob", "pw-bob")
		room, err := admin.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		knockable, err := admin.CreateRoom(ctx, &mautrix.ReqCreateRoom{RoomVersion: "12",
			InitialState: []*event.Event{{Type: event.StateJoinRules, Content: event.Content{Raw: map[string]any{"join_rule": "knock"}}}}})
		if err != nil {
			t.Fatal(err)
		}
		other, err := admin.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := alice.JoinRoomByID(ctx, room.RoomID); err != nil {
			t.Fatal(err)
		}
		own, err := alice.SendText(ctx, room.RoomID, "before")
		if err != nil {
			t.Fatal(err)
		}

		restrict(t, s, admin, "suspend", "suspended", "alice", true)
		refused := map[string]error{}
		_, refused["send"] = alice.SendText(ctx, room.RoomID, "while suspended")
		_, refused["join"] = alice.JoinRoomByID(ctx, other.RoomID)
		_, refused["knock"] = alice.KnockRoom(ctx, knockable.RoomID.String(), &mautrix.ReqKnockRoom{})
		_, refused["invite"] = alice.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: "@bob:hs1.test"})
		_, refused["invite as state"] = alice.SendStateEvent(ctx, room.RoomID, event.StateMember, "@bob:hs1.test", map[string]any{"membership": "invite"})
		refused["displayname"] = alice.SetDisplayName(ctx, "Alice")
		refused["avatar"] = alice.SetAvatarURL(ctx, id.ContentURI{Homeserver: "hs1.test", FileID: "abc"})
		for what, err := range refused {
			testserver.WantHTTPError(t, what+" while suspended", err, http.StatusForbidden, "M_USER_SUSPENDED")
		}
		if _, err := alice.SyncRequest(ctx, 0, "", "", false, ""); err != nil {
			t.Fatalf("sync while suspended: %v", err)
		}
		if _, err := alice.Messages(ctx, room.RoomID, "", "", mautrix.DirectionBackward, nil, 10); err != nil {
			t.Fatalf("messages while suspended: %v", err)
		}
		if _, err := alice.RedactEvent(ctx, room.RoomID, own.EventID); err != nil {
			t.Fatalf("redacting her own event while suspended: %v", err)
		}
		if _, err := alice.LeaveRoom(ctx, room.RoomID); err != nil {
			t.Fatalf("leaving while suspended: %v", err)
		}

		restrict(t, s, admin, "suspend", "suspended", "alice", false)
		if _, err := alice.JoinRoomByID(ctx, room.RoomID); err != nil {
			t.Fatalf("join after unsuspending: %v", err)
		}
		if _, err := alice.SendText(ctx, room.RoomID, "back"); err != nil {
			t.Fatalf("send after unsuspending: %v", err)
		}
		mine, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{})
		if err != nil {
			t.Fatalf("createRoom after unsuspending: %v", err)
		}
		if _, err := alice.InviteUser(ctx, mine.RoomID, &mautrix.ReqInviteUser{UserID: "@bob:hs1.test"}); err != nil {
			t.Fatalf("invite after unsuspending: %v", err)
		}
		if err := alice.SetDisplayName(ctx, "Alice"); err != nil {
			t.Fatalf("displayname after unsuspending: %v", err)
		}
		if _, err := alice.KnockRoom(ctx, knockable.RoomID.String(), &mautrix.ReqKnockRoom{}); err != nil {
			t.Fatalf("knock after unsuspending: %v", err)
		}
	})
}
