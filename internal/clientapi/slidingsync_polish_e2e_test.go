package clientapi_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// ssLoginDevice logs alice in naming her device, as a client re-using
// its device ID does.
func ssLoginDevice(t *testing.T, s *testserver.Server, localpart, password string, device id.DeviceID) *mautrix.Client {
	t.Helper()
	c := s.Client()
	if _, err := c.Login(context.Background(), &mautrix.ReqLogin{
		Type:       mautrix.AuthTypePassword,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: localpart},
		Password:   password, DeviceID: device, StoreCredentials: true,
	}); err != nil {
		t.Fatalf("login %s on %s: %v", localpart, device, err)
	}
	return c
}

// TestSlidingSyncConnectionsEndWithTheirDevice: a device logged out
// loses its sliding sync connections, as Synapse deletes them with the
// device: after a new login with the same device ID the old pos is
// M_UNKNOWN_POS (the client starts over) rather than resuming what the
// deleted device had been sent; both while the connection is in memory
// and after a restart, when it would be read back from the database.
func TestSlidingSyncConnectionsEndWithTheirDevice(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw")
		room := syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "room"})
		logout := func(c *mautrix.Client) {
			t.Helper()
			st, b := s.Do(t, http.MethodPost, "/_matrix/client/v3/logout", c.AccessToken, map[string]any{})
			testserver.WantStatus(t, "logout", st, b, http.StatusOK)
		}
		// connect starts the room list connection and returns a pos the
		// server has answered twice (what arrives behind the first
		// answer settled).
		connect := func(c *mautrix.Client) string {
			t.Helper()
			first := ssOK(t, s, c, "", 0, roomList(0, 19))
			if r := first.Rooms[room.String()]; r == nil || !r.Initial {
				t.Fatalf("first answer: %+v", first.Rooms)
			}
			return ssOK(t, s, c, first.Pos, 0, roomList(0, 19)).Pos
		}

		// In memory.
		phone := ssLoginDevice(t, s, "alice", "pw", "PHONE")
		pos := connect(phone)
		logout(phone)
		phone = ssLoginDevice(t, s, "alice", "pw", "PHONE")
		st, _, raw := ssync(t, s, phone, pos, 0, roomList(0, 19))
		testserver.WantError(t, "pos of a logged out device, in memory", st, raw.JSON, http.StatusBadRequest, "M_UNKNOWN_POS")

		// Stored: the connection is persisted by the restart, the device
		// logged out after it, so only the database holds the connection.
		pos = connect(phone)
		s.Restart()
		s.Repoint(phone)
		logout(phone)
		phone = ssLoginDevice(t, s, "alice", "pw", "PHONE")
		st, _, raw = ssync(t, s, phone, pos, 0, roomList(0, 19))
		testserver.WantError(t, "pos of a logged out device, stored", st, raw.JSON, http.StatusBadRequest, "M_UNKNOWN_POS")

		// Starting over works, and is whole again.
		if r := ssOK(t, s, phone, "", 0, roomList(0, 19)).Rooms[room.String()]; r == nil || !r.Initial {
			t.Fatal("new connection of the new device: room not sent whole")
		}
	})
}

// TestSlidingSyncAccountDataOfARoomBack: a room the connection sent
// that left the window (another room's message pushed it out), had its
// account data changed while out, and came back (its own message) gets
// that account data with it, though it is not sent initial; then only
// changes again. Raw HTTP, Element X's room list request with a window
// of one room.
func TestSlidingSyncAccountDataOfARoomBack(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice, bob := s.Register("alice", "pw"), s.Register("bob", "pw")
		other := syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "other"})
		room := syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "room"})
		syJoin(t, bob, other)
		syJoin(t, bob, room)
		sySend(t, bob, room, "first")
		req := roomList(0, 0)
		first := ssFull(t, s, alice, "", req)
		if r := first.Rooms[room.String()]; r == nil || !r.Initial || len(first.Rooms) != 1 {
			t.Fatalf("first window: %v", ssRoomIDs(first))
		}

		// other's message pushes room out of the window.
		sySend(t, bob, other, "push")
		out := ssFull(t, s, alice, first.Pos, req)
		if r := out.Rooms[other.String()]; r == nil || len(out.Rooms) != 1 {
			t.Fatalf("other did not take the window: %v", ssRoomIDs(out))
		}
		// room's account data changes while it is out, and an answer
		// moves the connection past the change.
		st, b := s.Do(t, http.MethodPut, "/_matrix/client/v3/user/"+url.PathEscape(alice.UserID.String())+"/rooms/"+url.PathEscape(room.String())+"/account_data/org.example.seen",
			tok(alice), map[string]any{"seen": true})
		testserver.WantStatus(t, "room account data", st, b, http.StatusOK)
		quiet := ssFull(t, s, alice, out.Pos, req)
		if _, ok := quiet.Extensions.AccountData.Rooms[room.String()]; ok {
			t.Fatal("account data sent for a room out of the window")
		}

		// room comes back with a message: not initial, with the account
		// data it missed.
		sySend(t, bob, room, "back")
		back := ssFull(t, s, alice, quiet.Pos, req)
		r := back.Rooms[room.String()]
		if r == nil || r.Initial || len(r.Timeline) != 1 || r.Timeline[0].Content["body"] != "back" {
			t.Fatalf("room back in the window: %+v", r)
		}
		if ad := back.Extensions.AccountData.Rooms[room.String()]; len(ad) != 1 || ad[0].Type != "org.example.seen" {
			t.Fatalf("account data of a room back in the window: %+v", back.Extensions.AccountData.Rooms)
		}
		// Once back, it is not sent again with the next answer.
		sySend(t, bob, room, "again")
		next := ssFull(t, s, alice, back.Pos, req)
		if next.Rooms[room.String()] == nil {
			t.Fatalf("next message: %v", ssRoomIDs(next))
		}
		if ad, ok := next.Extensions.AccountData.Rooms[room.String()]; ok {
			t.Fatalf("account data of a room in the window sent again: %+v", ad)
		}
	})
}
