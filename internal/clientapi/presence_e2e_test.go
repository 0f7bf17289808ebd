package clientapi_test

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

// TestPresence: alice sets her presence; bob, who shares a room with
// her, reads it, and so does /sync's view of his roommates' changes;
// carol, who shares none, is refused; nobody sets another's presence;
// sending a message, and no other event, brings an idle user back; the
// state survives a restart.
func TestPresence(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice, bob, carol := s.Register("alice", "pw-alice"), s.Register("bob", "pw-bob"), s.Register("carol", "pw-carol")
		room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bob.JoinRoom(ctx, room.RoomID.String(), nil); err != nil {
			t.Fatal(err)
		}
		if err := alice.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceOnline, StatusMsg: "writing tests"}); err != nil {
			t.Fatal(err)
		}
		for _, c := range []*mautrix.Client{alice, bob} {
			p, err := c.GetPresence(ctx, alice.UserID)
			if err != nil {
				t.Fatalf("%s reading alice's presence: %v", c.UserID, err)
			}
			if p.Presence != event.PresenceOnline || p.StatusMsg != "writing tests" || !p.CurrentlyActive {
				t.Fatalf("%s sees alice as %+v", c.UserID, p)
			}
		}
		_, err = carol.GetPresence(ctx, alice.UserID)
		testserver.WantHTTPError(t, "carol reading alice's presence", err, http.StatusForbidden, "M_FORBIDDEN")
		st, body := s.Do(t, http.MethodPut, "/_matrix/client/v3/presence/"+string(alice.UserID)+"/status", bob.AccessToken,
			map[string]any{"presence": "offline"})
		testserver.WantError(t, "bob setting alice's presence", st, body, http.StatusForbidden, "M_FORBIDDEN")
		st, body = s.Do(t, http.MethodPut, "/_matrix/client/v3/presence/"+string(bob.UserID)+"/status", bob.AccessToken,
			map[string]any{"presence": "away"})
		testserver.WantError(t, "an unknown state", st, body, http.StatusBadRequest, "M_INVALID_PARAM")
		st, body = s.Do(t, http.MethodPut, "/_matrix/client/v3/presence/"+string(bob.UserID)+"/status", bob.AccessToken,
			map[string]any{"presence": "online", "status_msg": 5})
		testserver.WantError(t, "a status_msg not a string", st, body, http.StatusBadRequest, "M_INVALID_PARAM")
		st, body = s.Do(t, http.MethodGet, "/_matrix/client/v3/presence/not-a-user/status", bob.AccessToken, nil)
		testserver.WantError(t, "a malformed user ID", st, body, http.StatusBadRequest, "M_INVALID_PARAM")

		// What /sync will give bob: alice's presence among his roommates'.
		evs, err := s.Presence().Changes(ctx, string(bob.UserID), 0, s.Engine().Stream().Current())
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 || evs[0].Sender != string(alice.UserID) || evs[0].Content.Presence != "online" {
			t.Fatalf("bob's presence changes: %+v", evs)
		}
		if evs, _ := s.Presence().Changes(ctx, string(carol.UserID), 0, s.Engine().Stream().Current()); len(evs) != 0 {
			t.Fatalf("carol's presence changes: %+v", evs)
		}

		// Sending a message counts as activity; an idle alice comes back.
		// Other events do not, as in Synapse.
		if err := alice.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceUnavailable}); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.SendMessageEvent(ctx, room.RoomID, event.NewEventType("org.example.ping"), map[string]any{}); err != nil {
			t.Fatal(err)
		}
		if p, _ := bob.GetPresence(ctx, alice.UserID); p == nil || p.Presence != event.PresenceUnavailable {
			t.Fatalf("after sending a non-message event, alice is %+v", p)
		}
		if _, err := alice.SendText(ctx, room.RoomID, "hello"); err != nil {
			t.Fatal(err)
		}
		if p, _ := bob.GetPresence(ctx, alice.UserID); p == nil || p.Presence != event.PresenceOnline || p.StatusMsg != "" {
			t.Fatalf("after sending, alice is %+v", p)
		}

		if err := alice.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceUnavailable, StatusMsg: "lunch"}); err != nil {
			t.Fatal(err)
		}
		s.Restart()
		s.Repoint(bob)
		p, err := bob.GetPresence(ctx, alice.UserID)
		if err != nil || p.Presence != event.PresenceUnavailable || p.StatusMsg != "lunch" {
			t.Fatalf("after a restart alice is %+v, %v", p, err)
		}
	})
}

// TestPresenceOff: with presence.enabled false, as Synapse's
// use_presence: false, updates are accepted and ignored and everyone
// reads as offline, even to users sharing no room.
func TestPresenceOff(t *testing.T) {
	testserver.EachEngine(t, func(c *config.Config) { c.Presence.Enabled = false }, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice, carol := s.Register("alice", "pw-alice"), s.Register("carol", "pw-carol")
		if err := alice.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceOnline, StatusMsg: "here"}); err != nil {
			t.Fatal(err)
		}
		for _, u := range []id.UserID{alice.UserID, "@nobody:elsewhere.test"} {
			p, err := carol.GetPresence(ctx, u)
			if err != nil || p.Presence != event.PresenceOffline || p.StatusMsg != "" {
				t.Fatalf("%s with presence off: %+v, %v", u, p, err)
			}
		}
	})
}
