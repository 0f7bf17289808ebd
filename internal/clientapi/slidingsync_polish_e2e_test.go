package clientapi_test

import (
	"context"
	"net/http"
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
