package clientapi_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestGuestAccess checks what guests may do (spec "Guest Access"): join
// only rooms with guest_access can_join, send and read there, read a
// world-readable room without joining, change only their display name,
// call only the listed endpoints; and that upgrading the guest account
// keeps its user ID and its rooms.
func TestGuestAccess(t *testing.T) {
	guests := func(c *config.Config) { c.Registration.AllowGuests = true }
	testserver.EachEngine(t, guests, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw")
		open, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", InitialState: []*event.Event{
			{Type: event.StateGuestAccess, Content: event.Content{Raw: map[string]any{"guest_access": "can_join"}}},
		}})
		if err != nil {
			t.Fatal(err)
		}
		closed, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		readable, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		setVisibility(t, alice, readable.RoomID, "world_readable")
		relSend(t, alice, readable.RoomID, event.EventMessage, relText("for all to read"))

		status, body := s.Do(t, "POST", regPath+"?kind=guest", "", map[string]any{})
		testserver.WantStatus(t, "guest", status, body, http.StatusOK)
		guestID, _ := body["user_id"].(string)
		token, _ := body["access_token"].(string)
		room := func(r id.RoomID) string { return "/_matrix/client/v3/rooms/" + url.PathEscape(string(r)) }

		status, body = s.Do(t, "POST", room(open.RoomID)+"/join", token, map[string]any{})
		testserver.WantStatus(t, "join can_join room", status, body, http.StatusOK)
		status, body = s.Do(t, "POST", room(closed.RoomID)+"/join", token, map[string]any{})
		testserver.WantError(t, "join room without guest access", status, body, http.StatusForbidden, "M_FORBIDDEN")
		status, body = s.Do(t, "PUT", room(open.RoomID)+"/send/m.room.message/t1", token, map[string]any{"msgtype": "m.text", "body": "hi from a guest"})
		testserver.WantStatus(t, "guest send", status, body, http.StatusOK)
		for _, path := range []string{room(open.RoomID) + "/messages?dir=b", room(open.RoomID) + "/state/m.room.create", room(open.RoomID) + "/members",
			room(readable.RoomID) + "/messages?dir=b", "/_matrix/client/v3/devices", "/_matrix/client/v3/sync?timeout=0"} {
			status, body = s.Do(t, "GET", path, token, nil)
			testserver.WantStatus(t, "guest GET "+path, status, body, http.StatusOK)
		}
		status, body = s.Do(t, "PUT", "/_matrix/client/v3/profile/"+url.PathEscape(guestID)+"/displayname", token, map[string]any{"displayname": "Visitor"})
		testserver.WantStatus(t, "guest displayname", status, body, http.StatusOK)
		status, body = s.Do(t, "PUT", "/_matrix/client/v3/profile/"+url.PathEscape(guestID)+"/avatar_url", token, map[string]any{"avatar_url": "mxc://x/y"})
		testserver.WantError(t, "guest avatar", status, body, http.StatusForbidden, "M_GUEST_ACCESS_FORBIDDEN")
		for _, req := range []struct{ method, path string }{
			{"POST", "/_matrix/client/v3/createRoom"},
			{"POST", "/_matrix/client/v3/search"},
			{"POST", "/_matrix/client/v3/user_directory/search"},
			{"GET", "/_matrix/client/v3/joined_rooms"},
			{"POST", room(open.RoomID) + "/invite"},
		} {
			status, body = s.Do(t, req.method, req.path, token, map[string]any{})
			testserver.WantError(t, "guest "+req.method+" "+req.path, status, body, http.StatusForbidden, "M_GUEST_ACCESS_FORBIDDEN")
		}

		// Upgrade: the same user ID, now a full account, still in its room.
		localpart := guestID[1 : len(guestID)-len(":hs1.test")]
		status, body = regWithDummy(t, s, map[string]any{"username": "someone-else", "password": "pw2", "guest_access_token": token})
		testserver.WantError(t, "upgrade to another user ID", status, body, http.StatusForbidden, "M_FORBIDDEN")
		status, body = regWithDummy(t, s, map[string]any{"username": localpart, "password": "pw2", "guest_access_token": token})
		testserver.WantStatus(t, "upgrade", status, body, http.StatusOK)
		if body["user_id"] != guestID {
			t.Fatalf("upgraded to %v, want %s", body["user_id"], guestID)
		}
		full, _ := body["access_token"].(string)
		status, who := s.Do(t, "GET", "/_matrix/client/v3/account/whoami", full, nil)
		if status != http.StatusOK || who["user_id"] != guestID || who["is_guest"] != false {
			t.Fatalf("whoami after upgrade: %d %v", status, who)
		}
		status, body = s.Do(t, "GET", "/_matrix/client/v3/joined_rooms", full, nil)
		testserver.WantStatus(t, "joined_rooms after upgrade", status, body, http.StatusOK)
		if rooms, _ := body["joined_rooms"].([]any); !slices.Contains(rooms, any(string(open.RoomID))) {
			t.Fatalf("joined_rooms after upgrade: %v", body)
		}
		// The guest's own token now acts for the full account too.
		status, body = s.Do(t, "POST", "/_matrix/client/v3/createRoom", token, map[string]any{})
		testserver.WantStatus(t, "createRoom with the old token", status, body, http.StatusOK)
		status, body = regWithDummy(t, s, map[string]any{"username": localpart, "password": "pw3", "guest_access_token": token})
		testserver.WantError(t, "second upgrade", status, body, http.StatusForbidden, "M_FORBIDDEN")
	})
}

// TestGuestRegistrationDisabled checks that kind=guest is refused when
// registration.allow_guests is off (the default).
func TestGuestRegistrationDisabled(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		status, body := s.Do(t, "POST", regPath+"?kind=guest", "", map[string]any{})
		testserver.WantError(t, "guest registration off", status, body, http.StatusForbidden, "M_FORBIDDEN")
	})
}

// TestGuestsLeaveWhenAccessRevoked checks the spec's MUST: when a room's
// m.room.guest_access stops being can_join, its guests are made to leave.
func TestGuestsLeaveWhenAccessRevoked(t *testing.T) {
	guests := func(c *config.Config) { c.Registration.AllowGuests = true }
	testserver.EachEngine(t, guests, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw")
		bob := s.Register("bob", "pw")
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", InitialState: []*event.Event{
			{Type: event.StateGuestAccess, Content: event.Content{Raw: map[string]any{"guest_access": "can_join"}}},
		}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bob.JoinRoomByID(ctx, created.RoomID); err != nil {
			t.Fatal(err)
		}
		status, body := s.Do(t, "POST", regPath+"?kind=guest", "", map[string]any{})
		testserver.WantStatus(t, "guest", status, body, http.StatusOK)
		guestID, _ := body["user_id"].(string)
		token, _ := body["access_token"].(string)
		roomPath := "/_matrix/client/v3/rooms/" + url.PathEscape(string(created.RoomID))
		status, body = s.Do(t, "POST", roomPath+"/join", token, map[string]any{})
		testserver.WantStatus(t, "guest join", status, body, http.StatusOK)

		if _, err := alice.SendStateEvent(ctx, created.RoomID, event.StateGuestAccess, "", map[string]any{"guest_access": "forbidden"}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			var member struct {
				Membership string `json:"membership"`
			}
			if err := alice.StateEvent(ctx, created.RoomID, event.StateMember, guestID, &member); err != nil {
				t.Fatal(err)
			}
			if member.Membership == "leave" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("guest still %q after guest access was revoked", member.Membership)
			}
			time.Sleep(20 * time.Millisecond)
		}
		// Full members stay.
		var member struct {
			Membership string `json:"membership"`
		}
		if err := alice.StateEvent(ctx, created.RoomID, event.StateMember, bob.UserID.String(), &member); err != nil || member.Membership != "join" {
			t.Fatalf("bob: %v %v", member, err)
		}
	})
}
