package reputation_test

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

	"github.com/myelin-chat/myelin/internal/reputation"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// userSubscribe sets c's own filter (account data) to one feed.
func userSubscribe(t *testing.T, c *mautrix.Client, feed id.RoomID, via ...string) {
	t.Helper()
	content := map[string]any{"feeds": []any{map[string]any{"room": feed.String(), "weight": 1.0, "via": via}}, "threshold": 1.0}
	if err := c.SetAccountData(context.Background(), reputation.SubscriptionsType, content); err != nil {
		t.Fatalf("%s subscribes: %v", c.UserID, err)
	}
}

// userExtent is c's extent report.
func userExtent(t *testing.T, s *testserver.Server, c *mautrix.Client) []map[string]any {
	t.Helper()
	status, body := s.Do(t, http.MethodGet, "/_matrix/client/unstable/org.myelin/reputation/extent?since_ts=0", c.AccessToken, nil)
	testserver.WantStatus(t, "extent", status, body, http.StatusOK)
	var out []map[string]any
	list, _ := body["feeds"].([]any)
	for _, f := range list {
		m, _ := f.(map[string]any)
		out = append(out, m)
	}
	return out
}

// userWaitFollowed waits until c's extent report shows its one feed
// followed with at least rules rules: the server follows a user's feed
// after the account data change, asynchronously.
func userWaitFollowed(t *testing.T, s *testserver.Server, c *mautrix.Client, rules float64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var feeds []map[string]any
	for time.Now().Before(deadline) {
		if feeds = userExtent(t, s, c); len(feeds) == 1 && feeds[0]["rules"].(float64) >= rules {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s's feed never followed with %v rules: %v", c.UserID, rules, feeds)
}

// messagesRaw is c's /messages chunk of a room, with extra query.
func messagesRaw(t *testing.T, s *testserver.Server, c *mautrix.Client, room id.RoomID, extra string) map[string]map[string]any {
	t.Helper()
	status, body := s.Do(t, http.MethodGet, "/_matrix/client/v3/rooms/"+url.PathEscape(room.String())+"/messages?dir=b&limit=100"+extra, c.AccessToken, nil)
	testserver.WantStatus(t, "messages", status, body, http.StatusOK)
	out := map[string]map[string]any{}
	chunk, _ := body["chunk"].([]any)
	for _, e := range chunk {
		m, _ := e.(map[string]any)
		out[m["event_id"].(string)] = m
	}
	return out
}

// syncInvites are the rooms c's initial sync shows invites to.
func syncInvites(t *testing.T, s *testserver.Server, c *mautrix.Client, extra string) map[string]bool {
	t.Helper()
	status, body := s.Do(t, http.MethodGet, "/_matrix/client/v3/sync?timeout=0"+extra, c.AccessToken, nil)
	testserver.WantStatus(t, "sync", status, body, http.StatusOK)
	out := map[string]bool{}
	rooms, _ := body["rooms"].(map[string]any)
	invites, _ := rooms["invite"].(map[string]any)
	for r := range invites {
		out[r] = true
	}
	return out
}

// TestReputationUserFilter: on three servers, hs1 publishes a feed that
// lists carol of hs3; bob of hs2 subscribes to it for his own view, dave
// of hs2 does not. Carol's messages, her invite and their notifications
// are hidden from bob alone (sync, /messages, /context, /notifications);
// org.myelin.show_filtered=true shows them to bob marked with the feed;
// bob's extent report counts what was hidden, and the server's counts
// what its own feeds hid.
func TestReputationUserFilter(t *testing.T) {
	net, admins := enfNetwork(t)
	ctx := context.Background()
	hs2 := net.Servers[1]
	feed := enfFeed(t, admins[0])
	enfRule(t, admins[0], feed, "user", "carol", "@carol:hs3.test", "m.ban", "spam")

	bob := hs2.Register("bob", "password1234")
	dave := hs2.Register("dave", "password1234")
	carol := net.Servers[2].Register("carol", "password1234")
	cathy := net.Servers[2].Register("cathy", "password1234")
	created, err := carol.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Targets' room"})
	if err != nil {
		t.Fatal(err)
	}
	room := created.RoomID
	for _, c := range []*mautrix.Client{bob, dave, cathy} {
		if _, err := c.JoinRoom(ctx, room.String(), &mautrix.ReqJoinRoom{Via: []string{"hs3.test"}}); err != nil {
			t.Fatalf("%s joins: %v", c.UserID, err)
		}
	}
	// Dave's join is hs2's own (hs2 is already in the room through
	// bob's) and reaches hs3 by a transaction: carol's message must come
	// after it in the room's graph, or the state it is judged against
	// (push's, as Synapse's) rightly lacks dave, and a loaded machine
	// let carol send first.
	enfWaitJoined(t, carol, room, bob.UserID, dave.UserID, cathy.UserID)
	userSubscribe(t, bob, feed, "hs1.test")
	userWaitFollowed(t, hs2, bob, 1)
	if feeds := userExtent(t, hs2, dave); len(feeds) != 0 {
		t.Fatalf("dave subscribed to nothing, yet his extent lists %v", feeds)
	}

	carolID := enfSend(t, carol, room, "carol's message")
	markerID := enfSend(t, cathy, room, "marker")
	// Dave sees carol; bob does not, on sync and /messages.
	if seen := enfSyncUntil(t, dave, room, "marker"); !slices.Contains(seen, "carol's message") {
		t.Errorf("dave's sync lacks carol's message: %q", seen)
	}
	if seen := enfSyncUntil(t, bob, room, "marker"); slices.Contains(seen, "carol's message") {
		t.Errorf("bob's sync shows carol's message his filter lists: %q", seen)
	}
	if evs := messagesRaw(t, hs2, bob, room, ""); evs[carolID.String()] != nil || evs[markerID.String()] == nil {
		t.Errorf("bob's /messages: carol's shown %v, marker shown %v", evs[carolID.String()] != nil, evs[markerID.String()] != nil)
	}
	if evs := messagesRaw(t, hs2, dave, room, ""); evs[carolID.String()] == nil {
		t.Error("dave's /messages lacks carol's message")
	}
	// show_filtered shows it to bob, marked with the feed.
	shown := messagesRaw(t, hs2, bob, room, "&org.myelin.show_filtered=true")[carolID.String()]
	if shown == nil {
		t.Fatal("bob's /messages with show_filtered lacks carol's message")
	}
	unsigned, _ := shown["unsigned"].(map[string]any)
	if by, _ := unsigned["org.myelin.filtered_by"].([]any); len(by) != 1 || by[0] != feed.String() {
		t.Errorf("carol's message shown to bob is marked %v, want [%s]", unsigned["org.myelin.filtered_by"], feed)
	}
	if m := messagesRaw(t, hs2, dave, room, "&org.myelin.show_filtered=true")[carolID.String()]; m != nil {
		if u, _ := m["unsigned"].(map[string]any); u["org.myelin.filtered_by"] != nil {
			t.Errorf("dave's copy of carol's message is marked filtered: %v", u)
		}
	}
	// /context of carol's message: not found for bob, found with the
	// parameter and for dave.
	ctxPath := "/_matrix/client/v3/rooms/" + url.PathEscape(room.String()) + "/context/" + url.PathEscape(carolID.String())
	status, body := hs2.Do(t, http.MethodGet, ctxPath, bob.AccessToken, nil)
	testserver.WantError(t, "bob's /context of a filtered event", status, body, http.StatusNotFound, "M_NOT_FOUND")
	status, body = hs2.Do(t, http.MethodGet, ctxPath+"?org.myelin.show_filtered=true", bob.AccessToken, nil)
	testserver.WantStatus(t, "bob's /context with show_filtered", status, body, http.StatusOK)
	status, body = hs2.Do(t, http.MethodGet, ctxPath, dave.AccessToken, nil)
	testserver.WantStatus(t, "dave's /context", status, body, http.StatusOK)
	// Notifications: dave is notified of carol's message, bob is not
	// (push evaluates in order: once the marker notified him, carol's
	// message was evaluated too).
	enfWaitNotified(t, hs2, dave, carolID)
	if ids := enfWaitNotified(t, hs2, bob, markerID); slices.Contains(ids, carolID.String()) {
		t.Errorf("bob's notifications show carol's message: %q", ids)
	}
	// The extent report counts it: one event, one user, one server.
	feeds := userExtent(t, hs2, bob)
	if len(feeds) != 1 || feeds[0]["room_id"] != feed.String() || feeds[0]["events"] != 1.0 || feeds[0]["users"] != 1.0 ||
		feeds[0]["servers"] != 1.0 || feeds[0]["invites"] != 0.0 {
		t.Errorf("bob's extent: %v, want one event of one user of one server", feeds)
	}

	// An invite from carol: hidden from bob's sync, not from dave's.
	private, err := carol.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*mautrix.Client{bob, dave} {
		if _, err := carol.InviteUser(ctx, private.RoomID, &mautrix.ReqInviteUser{UserID: c.UserID}); err != nil {
			t.Fatalf("carol invites %s: %v", c.UserID, err)
		}
	}
	if !syncInvites(t, hs2, dave, "")[private.RoomID.String()] {
		t.Error("dave's sync lacks carol's invite")
	}
	if syncInvites(t, hs2, bob, "")[private.RoomID.String()] {
		t.Error("bob's sync shows carol's invite his filter lists")
	}
	if !syncInvites(t, hs2, bob, "&org.myelin.show_filtered=true")[private.RoomID.String()] {
		t.Error("bob's sync with show_filtered lacks carol's invite")
	}

	// Unsubscribing shows carol again.
	if err := bob.SetAccountData(ctx, reputation.SubscriptionsType, map[string]any{"feeds": []any{}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for messagesRaw(t, hs2, bob, room, "")[carolID.String()] == nil {
		if time.Now().After(deadline) {
			t.Fatal("carol's message never came back to bob once he unsubscribed")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The server's extent: hs2 subscribes to the feed itself; carol's
	// next message is hidden from everyone and counted for the feed.
	enfSubscribe(t, hs2, admins[1], feed, "hs1.test")
	enfWaitListed(t, hs2, admins[1], "events", "user", carol.UserID.String(), true)
	listedID := enfSend(t, carol, room, "while the server lists carol")
	enfWaitDecision(t, hs2, admins[1], "events", carol.UserID.String(), listedID.String())
	status, body = hs2.Do(t, http.MethodGet, "/_myelin/admin/v1/reputation/extent?since_ts=0", admins[1].AccessToken, nil)
	testserver.WantStatus(t, "server extent", status, body, http.StatusOK)
	list, _ := body["feeds"].([]any)
	if len(list) != 1 {
		t.Fatalf("server extent: %v", body)
	}
	x, _ := list[0].(map[string]any)
	if x["room_id"] != feed.String() || x["events"].(float64) < 1 || x["users"] != 1.0 {
		t.Errorf("server extent: %v, want carol's event(s) counted for the feed", x)
	}
	status, body = hs2.Do(t, http.MethodGet, "/_myelin/admin/v1/reputation/extent", bob.AccessToken, nil)
	testserver.WantError(t, "a user's server extent", status, body, http.StatusForbidden, "M_FORBIDDEN")
	status, body = hs2.Do(t, http.MethodGet, "/_matrix/client/unstable/org.myelin/reputation/extent?since_ts=x", bob.AccessToken, nil)
	testserver.WantError(t, "a bad since_ts", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
	_ = event.EventMessage
}

// enfWaitJoined waits until c's server holds every one of users joined
// to room.
func enfWaitJoined(t *testing.T, c *mautrix.Client, room id.RoomID, users ...id.UserID) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := c.JoinedMembers(context.Background(), room)
		if err != nil {
			t.Fatalf("%s's joined members: %v", c.UserID, err)
		}
		missing := slices.DeleteFunc(slices.Clone(users), func(u id.UserID) bool { _, ok := resp.Joined[u]; return ok })
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's server never saw %v join", c.UserID, missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReputationUserFilterLocal: one server, both engines: a local feed
// listing mallory hides her messages from alice, who subscribed (the
// rule published after the subscription, so followed live), and not
// from bob, in /messages and notifications; the extent report counts
// them.
func TestReputationUserFilterLocal(t *testing.T) {
	testserver.EachEngine(t, enfConfig, func(t *testing.T, s *testserver.Server) {
		admin := s.RegisterAdmin("admin", "password1234")
		alice, bob := s.Register("alice", "password1234"), s.Register("bob", "password1234")
		mallory := s.Register("mallory", "password1234")
		feed := enfFeed(t, admin)
		room := testserver.Room(t, bob, &mautrix.ReqCreateRoom{Preset: "public_chat"}, alice, mallory)
		userSubscribe(t, alice, feed)
		userWaitFollowed(t, s, alice, 0)
		// The rule arrives after the subscription: followed live.
		enfRule(t, admin, feed, "user", "mallory", mallory.UserID.String(), "m.ban", "spam")
		userWaitFollowed(t, s, alice, 1)
		malloryID := enfSend(t, mallory, room, "from mallory")
		markerID := enfSend(t, bob, room, "marker")
		if evs := messagesRaw(t, s, alice, room, ""); evs[malloryID.String()] != nil || evs[markerID.String()] == nil {
			t.Errorf("alice's /messages: mallory's shown %v, bob's shown %v", evs[malloryID.String()] != nil, evs[markerID.String()] != nil)
		}
		if evs := messagesRaw(t, s, bob, room, ""); evs[malloryID.String()] == nil {
			t.Error("bob's /messages lacks mallory's message")
		}
		if ids := enfWaitNotified(t, s, alice, markerID); slices.Contains(ids, malloryID.String()) {
			t.Errorf("alice is notified of mallory's message: %q", ids)
		}
		if ids := enfWaitNotified(t, s, bob, malloryID); !slices.Contains(ids, malloryID.String()) {
			t.Errorf("bob's notifications: %q", ids)
		}
		if feeds := userExtent(t, s, alice); len(feeds) != 1 || feeds[0]["events"] != 1.0 || feeds[0]["users"] != 1.0 {
			t.Errorf("alice's extent: %v", feeds)
		}
	})
}
