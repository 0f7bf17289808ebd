package clientapi_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestAccountLocked: a locked account (spec v1.12 "Account locking")
// gets 401 M_USER_LOCKED with soft_logout on every authenticated request
// but logout, keeps its access token, and cannot log in; unlocking
// restores the same session.
func TestAccountLocked(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw-alice")
		other := s.Login("alice", "pw-alice")
		if err := s.Accounts().SetLocked(ctx, "alice", true); err != nil {
			t.Fatal(err)
		}
		for _, call := range []struct {
			what string
			err  error
		}{
			{"whoami", func() error { _, err := alice.Whoami(ctx); return err }()},
			{"sync", func() error { _, err := alice.SyncRequest(ctx, 0, "", "", false, ""); return err }()},
			{"createRoom", func() error { _, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{}); return err }()},
		} {
			testserver.WantHTTPError(t, call.what, call.err, http.StatusUnauthorized, "M_USER_LOCKED")
			var herr mautrix.HTTPError
			if !errors.As(call.err, &herr) || herr.RespError == nil || herr.RespError.ExtraData["soft_logout"] != true {
				t.Fatalf("%s: no soft_logout in %v", call.what, call.err)
			}
		}
		// /versions takes an optional token: still answered.
		st, body := s.Do(t, http.MethodGet, "/_matrix/client/versions", alice.AccessToken, nil)
		testserver.WantStatus(t, "versions", st, body, http.StatusOK)
		// No new session while locked.
		st, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/login", "", map[string]any{
			"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "alice"}, "password": "pw-alice"})
		testserver.WantError(t, "login while locked", st, body, http.StatusUnauthorized, "M_USER_LOCKED")
		// Logout works, and ends only that session.
		if _, err := other.Logout(ctx); err != nil {
			t.Fatalf("logout while locked: %v", err)
		}
		if err := s.Accounts().SetLocked(ctx, "alice", false); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.Whoami(ctx); err != nil {
			t.Fatalf("the kept session after unlocking: %v", err)
		}
		if _, err := other.Whoami(ctx); err == nil {
			t.Fatal("the logged out session still works")
		}
		if err := s.Accounts().SetLocked(ctx, "nobody", true); err == nil {
			t.Fatal("locking an unknown account succeeded")
		}
	})
}

// TestAccountSuspended: a suspended account (spec v1.13 "Account
// suspension") may read, leave and redact its own events, and log in;
// joining, inviting, sending messages or state, changing its profile and
// redacting others' events are 403 M_USER_SUSPENDED.
func TestAccountSuspended(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw-alice")
		bob := s.Register("bob", "pw-bob")
		room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		other, err := bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bob.JoinRoomByID(ctx, room.RoomID); err != nil {
			t.Fatal(err)
		}
		own, err := alice.SendText(ctx, room.RoomID, "mine")
		if err != nil {
			t.Fatal(err)
		}
		own2, err := alice.SendText(ctx, room.RoomID, "mine too")
		if err != nil {
			t.Fatal(err)
		}
		bobs, err := bob.SendText(ctx, room.RoomID, "bob's")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Accounts().SetSuspended(ctx, "alice", true); err != nil {
			t.Fatal(err)
		}

		refused := map[string]error{}
		_, refused["send"] = alice.SendText(ctx, room.RoomID, "while suspended")
		_, refused["state"] = alice.SendStateEvent(ctx, room.RoomID, event.StateTopic, "", map[string]any{"topic": "t"})
		_, refused["join"] = alice.JoinRoomByID(ctx, other.RoomID)
		_, refused["invite"] = alice.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: "@carol:hs1.test"})
		refused["displayname"] = alice.SetDisplayName(ctx, "Alice")
		_, refused["createRoom"] = alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{})
		// The room's creator could redact bob's event, but not while
		// suspended, by either endpoint.
		_, refused["redact other"] = alice.RedactEvent(ctx, room.RoomID, bobs.EventID)
		_, refused["redact other via send"] = alice.SendMessageEvent(ctx, room.RoomID, event.EventRedaction, map[string]any{"redacts": bobs.EventID})
		for what, err := range refused {
			testserver.WantHTTPError(t, what, err, http.StatusForbidden, "M_USER_SUSPENDED")
		}

		if _, err := alice.RedactEvent(ctx, room.RoomID, own.EventID); err != nil {
			t.Fatalf("redacting her own event: %v", err)
		}
		if _, err := alice.SendMessageEvent(ctx, room.RoomID, event.EventRedaction, map[string]any{"redacts": own2.EventID}); err != nil {
			t.Fatalf("redacting her own event via /send: %v", err)
		}
		if _, err := alice.Messages(ctx, room.RoomID, "", "", mautrix.DirectionBackward, nil, 10); err != nil {
			t.Fatalf("reading while suspended: %v", err)
		}
		if _, err := alice.SyncRequest(ctx, 0, "", "", false, ""); err != nil {
			t.Fatalf("syncing while suspended: %v", err)
		}
		s.Login("alice", "pw-alice")
		if _, err := alice.LeaveRoom(ctx, room.RoomID); err != nil {
			t.Fatalf("leaving while suspended: %v", err)
		}

		if err := s.Accounts().SetSuspended(ctx, "alice", false); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.JoinRoomByID(ctx, other.RoomID); err != nil {
			t.Fatalf("joining after the suspension: %v", err)
		}
	})
}
