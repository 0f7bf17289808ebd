package reputation_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/reputation"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// The enforcement points of issue 16 item 5 on one server whose admin
// publishes a feed the server subscribes to: a registration of a listed
// localpart, joins of a listed room, the room directory, hierarchy and
// summaries, and the user directory; each undone when the rule is
// removed (item 6). The points that need other servers (events, invites,
// media) are in enforcement_network_e2e_test.go.

// enfSecret is the shared secret the tests' admins register with.
const enfSecret = "reputation-enforcement-secret"

func enfConfig(c *config.Config) { c.Registration.SharedSecret = enfSecret }

// enfRule publishes (content non-nil) or removes (nil) a rule of kind
// ("user", "room", "server") in a feed room: the m.policy.rule.* state
// event keyed by stateKey, as Draupnir writes them.
func enfRule(t *testing.T, c *mautrix.Client, feed id.RoomID, kind, stateKey, entity, recommendation, reason string) {
	t.Helper()
	content := map[string]any{}
	if entity != "" {
		content = map[string]any{"entity": entity, "recommendation": recommendation, "reason": reason}
	}
	if _, err := c.SendStateEvent(context.Background(), feed, event.Type{Type: "m.policy.rule." + kind, Class: event.StateEventType}, stateKey, content); err != nil {
		t.Fatalf("rule %s %s: %v", kind, stateKey, err)
	}
}

// enfHashedRule publishes a rule that names its entity only by its
// MSC4205 hash (the SHA-256 of the ID, base64), as a feed that must not
// reveal whom it lists does.
func enfHashedRule(t *testing.T, c *mautrix.Client, feed id.RoomID, kind, stateKey, entity, recommendation, reason string) {
	t.Helper()
	content := map[string]any{"hashes": map[string]any{"sha256": reputation.HashString(entity)},
		"recommendation": recommendation, "reason": reason}
	if _, err := c.SendStateEvent(context.Background(), feed, event.Type{Type: "m.policy.rule." + kind, Class: event.StateEventType}, stateKey, content); err != nil {
		t.Fatalf("hashed rule %s %s: %v", kind, stateKey, err)
	}
}

// enfWaitDecision waits until s's decision log holds a decision of the
// action with the detail (an event ID, a user ID...), written by the
// log's worker after the decision.
func enfWaitDecision(t *testing.T, s *testserver.Server, admin *mautrix.Client, action, entity, detail string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var body map[string]any
	for time.Now().Before(deadline) {
		var status int
		status, body = s.Do(t, http.MethodGet, "/_myelin/admin/v1/reputation/decisions?limit=1000&action="+action, admin.AccessToken, nil)
		testserver.WantStatus(t, "decisions", status, body, http.StatusOK)
		list, _ := body["decisions"].([]any)
		for _, d := range list {
			if m, _ := d.(map[string]any); m["detail"] == detail && m["entity"] == entity {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s's decision log never recorded %s on %s with detail %s; last answer %v", s.Config.ServerName, action, entity, detail, body)
}

// enfFeed creates a feed room on c's server that other servers may join.
func enfFeed(t *testing.T, c *mautrix.Client) id.RoomID {
	t.Helper()
	resp, err := c.CreateRoom(context.Background(), &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Ban list"})
	if err != nil {
		t.Fatalf("create feed: %v", err)
	}
	return resp.RoomID
}

// enfSubscribe subscribes s to a feed through its admin API, joining it
// through the via servers when it is another server's.
func enfSubscribe(t *testing.T, s *testserver.Server, admin *mautrix.Client, feed id.RoomID, via ...string) {
	t.Helper()
	req := map[string]any{"room": feed.String(), "weight": 1.0}
	if len(via) > 0 {
		req["via"] = via
	}
	status, body := s.Do(t, http.MethodPost, "/_myelin/admin/v1/reputation/feeds", admin.AccessToken, req)
	if status != http.StatusOK {
		t.Fatalf("subscribe to %s: status %d: %v", feed, status, body)
	}
}

// enfWaitListed waits until s's blend lists (or no longer lists) an
// entity for an action, as its admin API's check answers: rules reach
// a server as events do, asynchronously.
func enfWaitListed(t *testing.T, s *testserver.Server, admin *mautrix.Client, action, kind, entity string, want bool) {
	t.Helper()
	q := url.Values{"action": {action}, "kind": {kind}, "entity": {entity}}
	deadline := time.Now().Add(20 * time.Second)
	var body map[string]any
	for time.Now().Before(deadline) {
		var status int
		status, body = s.Do(t, http.MethodGet, "/_myelin/admin/v1/reputation/check?"+q.Encode(), admin.AccessToken, nil)
		if status == http.StatusOK && body["listed"] == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never had %s %s listed=%v for %s; last answer %v", s.Config.ServerName, kind, entity, want, action, body)
}

// enfWantHTTPError fails unless err is a Matrix error with the status
// and errcode whose message holds text.
func enfWantHTTPError(t *testing.T, what string, err error, status int, code, text string) {
	t.Helper()
	testserver.WantHTTPError(t, what, err, status, code)
	if text != "" && !strings.Contains(err.Error(), text) {
		t.Fatalf("%s: %v, want a message with %q", what, err, text)
	}
}

func TestReputationRegistration(t *testing.T) {
	testserver.EachEngine(t, enfConfig, func(t *testing.T, s *testserver.Server) {
		admin := s.RegisterAdmin("admin", "password1234")
		feed := enfFeed(t, admin)
		enfSubscribe(t, s, admin, feed)
		enfRule(t, admin, feed, "user", "spam", "@spam*:"+s.Config.ServerName, "m.ban", "spam accounts")
		enfWaitListed(t, s, admin, "registration", "user", s.UserID("spambot"), true)

		register := func(user string) (int, map[string]any) {
			return s.Do(t, http.MethodPost, "/_matrix/client/v3/register", "", map[string]any{
				"username": user, "password": "password1234", "auth": map[string]any{"type": "m.login.dummy"}})
		}
		status, body := register("spambot")
		testserver.WantError(t, "register a listed localpart", status, body, http.StatusForbidden, "M_FORBIDDEN")
		status, body = s.Do(t, http.MethodGet, "/_matrix/client/v3/register/available?username=spambot2", "", nil)
		testserver.WantError(t, "a listed localpart's availability", status, body, http.StatusForbidden, "M_FORBIDDEN")
		status, body = register("goodname")
		testserver.WantStatus(t, "register an unlisted localpart", status, body, http.StatusOK)

		// Nothing was created: once the rule is gone the name is free.
		enfRule(t, admin, feed, "user", "spam", "", "", "")
		enfWaitListed(t, s, admin, "registration", "user", s.UserID("spambot"), false)
		status, body = register("spambot")
		testserver.WantStatus(t, "register once the rule is removed", status, body, http.StatusOK)
	})
}

// TestReputationRoomListings: a listed room cannot be joined (the user
// is told why), and disappears from the public room directory, a space's
// hierarchy and room summaries for non-members; its members still see
// it. Removing the rule undoes each.
func TestReputationRoomListings(t *testing.T) {
	testserver.EachEngine(t, enfConfig, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		admin := s.RegisterAdmin("admin", "password1234")
		owner := s.Register("owner", "password1234")
		dave := s.Register("dave", "password1234")
		feed := enfFeed(t, admin)
		enfSubscribe(t, s, admin, feed)

		created, err := owner.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Visibility: "public", Name: "Listed room"})
		if err != nil {
			t.Fatal(err)
		}
		room := created.RoomID
		space, err := owner.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Space",
			CreationContent: map[string]any{"type": "m.space"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := owner.SendStateEvent(ctx, space.RoomID, event.StateSpaceChild, room.String(),
			map[string]any{"via": []string{s.Config.ServerName}}); err != nil {
			t.Fatal(err)
		}

		inDirectory := func() bool {
			status, body := s.Do(t, http.MethodGet, "/_matrix/client/v3/publicRooms", dave.AccessToken, nil)
			testserver.WantStatus(t, "publicRooms", status, body, http.StatusOK)
			chunk, _ := body["chunk"].([]any)
			for _, c := range chunk {
				if m, _ := c.(map[string]any); m["room_id"] == room.String() {
					return true
				}
			}
			return false
		}
		inHierarchy := func() bool {
			status, body := s.Do(t, http.MethodGet, "/_matrix/client/v1/rooms/"+url.PathEscape(space.RoomID.String())+"/hierarchy", dave.AccessToken, nil)
			testserver.WantStatus(t, "hierarchy", status, body, http.StatusOK)
			rooms, _ := body["rooms"].([]any)
			for _, r := range rooms {
				if m, _ := r.(map[string]any); m["room_id"] == room.String() {
					return true
				}
			}
			return false
		}
		summary := func(c *mautrix.Client) int {
			status, _ := s.Do(t, http.MethodGet, "/_matrix/client/v1/room_summary/"+url.PathEscape(room.String()), c.AccessToken, nil)
			return status
		}
		if !inDirectory() || !inHierarchy() || summary(dave) != http.StatusOK {
			t.Fatal("the room is not listed before any rule: the checks below could not fail")
		}

		enfRule(t, admin, feed, "room", "r1", room.String(), "m.ban", "illegal content")
		enfWaitListed(t, s, admin, "joins", "room", room.String(), true)
		enfWaitListed(t, s, admin, "directory", "room", room.String(), true)

		_, err = dave.JoinRoom(ctx, room.String(), nil)
		enfWantHTTPError(t, "join a listed room", err, http.StatusForbidden, "M_FORBIDDEN",
			"This room is blocked by a reputation feed: illegal content")
		enfWaitDecision(t, s, admin, "joins", room.String(), dave.UserID.String())
		if inDirectory() {
			t.Error("a listed room is in the public room directory")
		}
		if inHierarchy() {
			t.Error("a listed room is in a space's hierarchy")
		}
		if st := summary(dave); st != http.StatusNotFound {
			t.Errorf("a listed room's summary for a non-member: status %d, want 404", st)
		}
		if st := summary(owner); st != http.StatusOK {
			t.Errorf("a listed room's summary for its member: status %d, want 200", st)
		}

		enfRule(t, admin, feed, "room", "r1", "", "", "")
		enfWaitListed(t, s, admin, "joins", "room", room.String(), false)
		enfWaitListed(t, s, admin, "directory", "room", room.String(), false)
		if !inDirectory() || !inHierarchy() || summary(dave) != http.StatusOK {
			t.Error("the room is not listed again once the rule is removed")
		}
		if _, err := dave.JoinRoom(ctx, room.String(), nil); err != nil {
			t.Errorf("join once the rule is removed: %v", err)
		}
	})
}

// TestReputationUserDirectory: a listed user is found by nobody, not
// even those who share a room with them, until the rule goes.
func TestReputationUserDirectory(t *testing.T) {
	testserver.EachEngine(t, enfConfig, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		admin := s.RegisterAdmin("admin", "password1234")
		spammy := s.Register("spammy", "password1234")
		dave := s.Register("dave", "password1234")
		feed := enfFeed(t, admin)
		enfSubscribe(t, s, admin, feed)
		created, err := spammy.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dave.JoinRoom(ctx, created.RoomID.String(), nil); err != nil {
			t.Fatal(err)
		}
		found := func() bool {
			resp, err := dave.SearchUserDirectory(ctx, "spammy", 10)
			if err != nil {
				t.Fatalf("user directory: %v", err)
			}
			for _, u := range resp.Results {
				if u.UserID == spammy.UserID {
					return true
				}
			}
			return false
		}
		if !found() {
			t.Fatal("the user is not found before any rule: the check below could not fail")
		}
		enfRule(t, admin, feed, "user", "u1", spammy.UserID.String(), "m.ban", "spam")
		enfWaitListed(t, s, admin, "user_directory", "user", spammy.UserID.String(), true)
		if found() {
			t.Error("a listed user is found in the user directory")
		}
		enfRule(t, admin, feed, "user", "u1", "", "", "")
		enfWaitListed(t, s, admin, "user_directory", "user", spammy.UserID.String(), false)
		if !found() {
			t.Error("the user is not found again once the rule is removed")
		}
	})
}
