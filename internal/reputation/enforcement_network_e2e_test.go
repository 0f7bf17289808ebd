package reputation_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testdb"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// The enforcement points that need other servers, on three Myelin
// servers: hs1 publishes a feed, hs2 subscribes to it and enforces, and
// hs3's users, rooms and the server itself are the targets. Federation
// heavy: SQLite only (the single-server points run on both engines).

// enfNetwork starts the three servers, each with an admin.
func enfNetwork(t *testing.T) (*testserver.Network, []*mautrix.Client) {
	net := testserver.StartNetwork(t, testdb.Engines()[0], 3, func(_ int, c *config.Config) { enfConfig(c) })
	var admins []*mautrix.Client
	for _, s := range net.Servers {
		admins = append(admins, s.RegisterAdmin("admin", "password1234"))
	}
	return net, admins
}

// enfFed is the start of most tests here: the three servers with their
// admins, hs1's admin's feed, which hs2 subscribes to, bob of hs2 and
// carol of hs3.
type enfFed struct {
	net        *testserver.Network
	admins     []*mautrix.Client
	hs2        *testserver.Server
	feed       id.RoomID
	bob, carol *mautrix.Client
}

func enfFederated(t *testing.T) enfFed {
	t.Helper()
	net, admins := enfNetwork(t)
	f := enfFed{net: net, admins: admins, hs2: net.Servers[1], feed: enfFeed(t, admins[0])}
	enfSubscribe(t, f.hs2, admins[1], f.feed, "hs1.test")
	f.bob = f.hs2.Register("bob", "password1234")
	f.carol = net.Servers[2].Register("carol", "password1234")
	return f
}

// enfTexts are the bodies of the m.room.message events of a room that c
// reads through /messages, oldest first.
func enfTexts(t *testing.T, s *testserver.Server, c *mautrix.Client, room id.RoomID) []string {
	t.Helper()
	status, body := s.Do(t, http.MethodGet, "/_matrix/client/v3/rooms/"+url.PathEscape(room.String())+"/messages?dir=b&limit=100", c.AccessToken, nil)
	testserver.WantStatus(t, "messages", status, body, http.StatusOK)
	var texts []string
	chunk, _ := body["chunk"].([]any)
	for _, e := range chunk {
		m, _ := e.(map[string]any)
		if m["type"] != "m.room.message" {
			continue
		}
		content, _ := m["content"].(map[string]any)
		if b, ok := content["body"].(string); ok {
			texts = append(texts, b)
		}
	}
	slices.Reverse(texts)
	return texts
}

// enfSyncUntil syncs c from since until the room's timeline brings
// marker, and returns every message body the syncs brought.
func enfSyncUntil(t *testing.T, c *mautrix.Client, room id.RoomID, marker string) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var seen []string
	since := ""
	for time.Now().Before(deadline) {
		resp, err := c.FullSyncRequest(context.Background(), mautrix.ReqSync{Timeout: 1000, Since: since,
			FilterID: `{"room":{"timeline":{"limit":100}}}`})
		if err != nil {
			t.Fatalf("%s: sync: %v", c.UserID, err)
		}
		since = resp.NextBatch
		if r, ok := resp.Rooms.Join[room]; ok {
			for _, ev := range r.Timeline.Events {
				if ev.Type == event.EventMessage {
					_ = ev.Content.ParseRaw(ev.Type)
					seen = append(seen, ev.Content.AsMessage().Body)
				}
			}
		}
		if slices.Contains(seen, marker) {
			return seen
		}
	}
	t.Fatalf("%s never saw %q in %s; saw %q", c.UserID, marker, room, seen)
	return nil
}

// enfNotified are the event IDs of c's notifications.
func enfNotified(t *testing.T, s *testserver.Server, c *mautrix.Client) []string {
	t.Helper()
	status, body := s.Do(t, http.MethodGet, "/_matrix/client/v3/notifications?limit=100", c.AccessToken, nil)
	testserver.WantStatus(t, "notifications", status, body, http.StatusOK)
	var ids []string
	list, _ := body["notifications"].([]any)
	for _, n := range list {
		m, _ := n.(map[string]any)
		ev, _ := m["event"].(map[string]any)
		if s, ok := ev["event_id"].(string); ok {
			ids = append(ids, s)
		}
	}
	return ids
}

// enfWaitNotified waits until c has a notification for eventID.
func enfWaitNotified(t *testing.T, s *testserver.Server, c *mautrix.Client, eventID id.EventID) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var ids []string
	for time.Now().Before(deadline) {
		if ids = enfNotified(t, s, c); slices.Contains(ids, eventID.String()) {
			return ids
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never notified of %s; notifications %q", c.UserID, eventID, ids)
	return nil
}

func enfSend(t *testing.T, c *mautrix.Client, room id.RoomID, text string) id.EventID {
	t.Helper()
	resp, err := c.SendText(context.Background(), room, text)
	if err != nil {
		t.Fatalf("%s sends %q: %v", c.UserID, text, err)
	}
	return resp.EventID
}

// TestReputationEventsOverFederation: hs2 hides the messages of a user
// of hs3 that hs1's feed lists (history and new messages, in /messages
// and /sync, and they notify nobody); removing the rule shows them all
// again. A takedown drops the user's new messages before storage, and
// the room goes on.
func TestReputationEventsOverFederation(t *testing.T) {
	f := enfFederated(t)
	ctx := context.Background()
	admins, hs2, feed, bob, carol := f.admins, f.hs2, f.feed, f.bob, f.carol
	cathy := f.net.Servers[2].Register("cathy", "password1234")
	room := testserver.Room(t, carol, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Targets' room"}, bob, cathy)
	beforeID := enfSend(t, carol, room, "before the rule")
	enfSyncUntil(t, bob, room, "before the rule")
	enfWaitNotified(t, hs2, bob, beforeID)

	enfRule(t, admins[0], feed, "user", "carol", carol.UserID.String(), "m.ban", "spam")
	enfWaitListed(t, hs2, admins[1], "events", "user", carol.UserID.String(), true)
	listedID := enfSend(t, carol, room, "while listed")
	markerID := enfSend(t, cathy, room, "marker one")
	if seen := enfSyncUntil(t, bob, room, "marker one"); slices.Contains(seen, "while listed") || slices.Contains(seen, "before the rule") {
		t.Errorf("bob's sync shows a listed user's messages: %q", seen)
	}
	if texts := enfTexts(t, hs2, bob, room); slices.Contains(texts, "while listed") || slices.Contains(texts, "before the rule") || !slices.Contains(texts, "marker one") {
		t.Errorf("bob's /messages while carol is listed: %q, want cathy's and none of carol's", texts)
	}
	status, body := hs2.Do(t, http.MethodGet, "/_matrix/client/v3/rooms/"+url.PathEscape(room.String())+"/event/"+url.PathEscape(listedID.String()), bob.AccessToken, nil)
	testserver.WantError(t, "a listed user's event by ID", status, body, http.StatusNotFound, "M_NOT_FOUND")
	// Push evaluates events in order: once cathy's message has notified
	// bob, carol's before it was evaluated too. The notification of
	// carol's message from before the rule is hidden as well.
	if ids := enfWaitNotified(t, hs2, bob, markerID); slices.Contains(ids, listedID.String()) || slices.Contains(ids, beforeID.String()) {
		t.Errorf("bob's notifications show a listed user's messages: %q", ids)
	}
	enfWaitDecision(t, hs2, admins[1], "events", carol.UserID.String(), listedID.String())
	// Stored, though: removing the rule shows the history again.
	if _, err := hs2.Engine().Event(ctx, listedID.String()); err != nil {
		t.Fatalf("a hidden event is not stored: %v", err)
	}
	enfRule(t, admins[0], feed, "user", "carol", "", "", "")
	enfWaitListed(t, hs2, admins[1], "events", "user", carol.UserID.String(), false)
	if texts := enfTexts(t, hs2, bob, room); !slices.Contains(texts, "while listed") || !slices.Contains(texts, "before the rule") {
		t.Errorf("bob's /messages once the rule is removed: %q, want carol's messages back", texts)
	}
	// The notification from before the rule is back; the message sent
	// while carol was listed never notified.
	if ids := enfNotified(t, hs2, bob); !slices.Contains(ids, beforeID.String()) || slices.Contains(ids, listedID.String()) {
		t.Errorf("bob's notifications once the rule is removed: %q, want %s and not %s", ids, beforeID, listedID)
	}

	// A takedown: carol's new message never reaches hs2's database; the
	// room goes on past the hole it leaves.
	enfRule(t, admins[0], feed, "user", "carol", carol.UserID.String(), "m.takedown", "abuse")
	enfWaitListed(t, hs2, admins[1], "events", "user", carol.UserID.String(), true)
	downID := enfSend(t, carol, room, "taken down")
	enfSend(t, cathy, room, "marker two")
	enfSyncUntil(t, bob, room, "marker two")
	if _, err := hs2.Engine().Event(ctx, downID.String()); err == nil {
		t.Error("an event of a taken-down user was stored")
	}
	enfRule(t, admins[0], feed, "user", "carol", "", "", "")
	enfWaitListed(t, hs2, admins[1], "events", "user", carol.UserID.String(), false)
	enfSend(t, carol, room, "after the takedown")
	enfSyncUntil(t, bob, room, "after the takedown")
}

// TestReputationInvitesOverFederation: hs2 refuses invites from a user
// of hs3 that a hashed rule lists (the inviter is told), and takes them
// again once the rule is removed.
func TestReputationInvitesOverFederation(t *testing.T) {
	f := enfFederated(t)
	ctx := context.Background()
	admins, hs2, feed, bob, carol := f.admins, f.hs2, f.feed, f.bob, f.carol
	created, err := carol.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	// The feed names carol by her ID's hash only.
	enfHashedRule(t, admins[0], feed, "user", "carol", carol.UserID.String(), "m.ban", "invite spam")
	enfWaitListed(t, hs2, admins[1], "invites", "user", carol.UserID.String(), true)
	_, err = carol.InviteUser(ctx, created.RoomID, &mautrix.ReqInviteUser{UserID: bob.UserID})
	enfWantHTTPError(t, "invite from a listed user", err, http.StatusForbidden, "M_FORBIDDEN", "invite spam")
	// Recorded with the refused invite's event ID, which carol never sees.
	eventually(t, "the refused invite recorded", func() bool {
		status, body := hs2.Do(t, http.MethodGet, "/_myelin/admin/v1/reputation/decisions?action=invites", admins[1].AccessToken, nil)
		testserver.WantStatus(t, "decisions", status, body, http.StatusOK)
		list, _ := body["decisions"].([]any)
		for _, d := range list {
			if m, _ := d.(map[string]any); m["entity"] == carol.UserID.String() && strings.HasPrefix(fmt.Sprint(m["detail"]), "$") {
				return true
			}
		}
		return false
	})
	enfRule(t, admins[0], feed, "user", "carol", "", "", "")
	enfWaitListed(t, hs2, admins[1], "invites", "user", carol.UserID.String(), false)
	if _, err := carol.InviteUser(ctx, created.RoomID, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
		t.Fatalf("invite once the rule is removed: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := bob.SyncRequest(ctx, 0, "", "", false, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := resp.Rooms.Invite[created.RoomID]; ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("bob never got the invite once the rule was removed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReputationMediaOverFederation: hs2 neither fetches the media of a
// listed server nor serves the copies it already has; removing the rule
// serves both.
func TestReputationMediaOverFederation(t *testing.T) {
	f := enfFederated(t)
	ctx := context.Background()
	admins, hs2, feed, bob, carol := f.admins, f.hs2, f.feed, f.bob, f.carol
	upload := func(text string) id.ContentURI {
		resp, err := carol.UploadBytes(ctx, []byte(text), "text/plain")
		if err != nil {
			t.Fatal(err)
		}
		return resp.ContentURI
	}
	download := func(uri id.ContentURI) int {
		r := testserver.Send(t, nil, http.MethodGet, hs2.URL+"/_matrix/client/v1/media/download/"+uri.Homeserver+"/"+uri.FileID, bob.AccessToken, nil)
		return r.Status
	}
	fetched := upload("fetched before the rule")
	if st := download(fetched); st != http.StatusOK {
		t.Fatalf("download before any rule: status %d", st)
	}
	enfRule(t, admins[0], feed, "server", "hs3", "hs3.test", "m.ban", "illegal media")
	enfWaitListed(t, hs2, admins[1], "media", "server", "hs3.test", true)
	fresh := upload("never fetched")
	if st := download(fetched); st != http.StatusNotFound {
		t.Errorf("a stored copy of a listed server's media: status %d, want 404", st)
	}
	if st := download(fresh); st != http.StatusNotFound {
		t.Errorf("a listed server's media: status %d, want 404", st)
	}
	stored := func(text string) bool {
		sum := sha256.Sum256([]byte(text))
		body, err := hs2.Media().Storage().Get(ctx, hex.EncodeToString(sum[:]))
		if err == nil {
			body.Close()
		}
		return err == nil
	}
	if !stored("fetched before the rule") {
		t.Fatal("the media fetched before the rule is not in hs2's storage: the check below could not fail")
	}
	if stored("never fetched") {
		t.Error("a listed server's media was fetched")
	}
	enfRule(t, admins[0], feed, "server", "hs3", "", "", "")
	enfWaitListed(t, hs2, admins[1], "media", "server", "hs3.test", false)
	for _, uri := range []id.ContentURI{fetched, fresh} {
		if st := download(uri); st != http.StatusOK {
			t.Errorf("%s once the rule is removed: status %d, want 200", uri, st)
		}
	}
}

// TestReputationListingsOverFederation: a listed room of hs2 is left out
// of the directory and the hierarchies hs2 gives other servers; a listed
// room of hs3 is
// neither summarised to hs2's users nor joined by them. Removing the
// rules undoes both.
func TestReputationListingsOverFederation(t *testing.T) {
	f := enfFederated(t)
	ctx := context.Background()
	admins, hs2, feed, bob, carol := f.admins, f.hs2, f.feed, f.bob, f.carol
	local, err := bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Visibility: "public", Name: "hs2's room"})
	if err != nil {
		t.Fatal(err)
	}
	remote, err := carol.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "hs3's room"})
	if err != nil {
		t.Fatal(err)
	}
	// carol reads hs2's directory through hs3 (federation /publicRooms).
	inRemoteDirectory := func() bool {
		resp, err := carol.PublicRooms(ctx, &mautrix.ReqPublicRooms{Server: "hs2.test"})
		if err != nil {
			t.Fatalf("hs2's directory through hs3: %v", err)
		}
		for _, r := range resp.Chunk {
			if r.RoomID == local.RoomID {
				return true
			}
		}
		return false
	}
	// carol asks hs3 for the summary of hs2's room, which hs3 is not in:
	// hs3 asks hs2 (federation /hierarchy). Not asked before the rule,
	// since hs3 keeps answers a while.
	remoteSummary := func() int {
		status, _ := f.net.Servers[2].Do(t, http.MethodGet, "/_matrix/client/v1/room_summary/"+url.PathEscape(local.RoomID.String())+"?via=hs2.test", carol.AccessToken, nil)
		return status
	}
	// bob asks hs2 for the summary of hs3's room, which hs2 is not in.
	summary := func() int {
		status, _ := hs2.Do(t, http.MethodGet, "/_matrix/client/v1/room_summary/"+url.PathEscape(remote.RoomID.String())+"?via=hs3.test", bob.AccessToken, nil)
		return status
	}
	if !inRemoteDirectory() || summary() != http.StatusOK {
		t.Fatal("the rooms are not listed before any rule: the checks below could not fail")
	}
	enfRule(t, admins[0], feed, "room", "local", local.RoomID.String(), "m.ban", "spam room")
	enfRule(t, admins[0], feed, "room", "remote", remote.RoomID.String(), "m.ban", "illegal content")
	enfWaitListed(t, hs2, admins[1], "directory", "room", local.RoomID.String(), true)
	enfWaitListed(t, hs2, admins[1], "directory", "room", remote.RoomID.String(), true)
	if inRemoteDirectory() {
		t.Error("hs2 lists a listed room to other servers")
	}
	if st := summary(); st != http.StatusNotFound {
		t.Errorf("summary of a listed room hs2 is not in: status %d, want 404", st)
	}
	if st := remoteSummary(); st != http.StatusNotFound {
		t.Errorf("hs2 describes a listed room to hs3: status %d, want 404", st)
	}
	_, err = bob.JoinRoom(ctx, remote.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{"hs3.test"}})
	enfWantHTTPError(t, "join a listed room of another server", err, http.StatusForbidden, "M_FORBIDDEN",
		"This room is blocked by a reputation feed: illegal content")

	enfRule(t, admins[0], feed, "room", "local", "", "", "")
	enfRule(t, admins[0], feed, "room", "remote", "", "", "")
	enfWaitListed(t, hs2, admins[1], "directory", "room", local.RoomID.String(), false)
	enfWaitListed(t, hs2, admins[1], "joins", "room", remote.RoomID.String(), false)
	if !inRemoteDirectory() || summary() != http.StatusOK || remoteSummary() != http.StatusOK {
		t.Error("the rooms are not listed again once the rules are removed")
	}
	// A version 12 room ID names no server: a room joined only through
	// listed servers is refused as well.
	enfRule(t, admins[0], feed, "server", "hs3", "hs3.test", "m.ban", "bad server")
	enfWaitListed(t, hs2, admins[1], "joins", "server", "hs3.test", true)
	_, err = bob.JoinRoom(ctx, remote.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{"hs3.test"}})
	enfWantHTTPError(t, "join a room only through a listed server", err, http.StatusForbidden, "M_FORBIDDEN",
		"This room is blocked by a reputation feed: bad server")
	enfRule(t, admins[0], feed, "server", "hs3", "", "", "")
	enfWaitListed(t, hs2, admins[1], "joins", "server", "hs3.test", false)
	if _, err := bob.JoinRoom(ctx, remote.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{"hs3.test"}}); err != nil {
		t.Errorf("join once the rules are removed: %v", err)
	}
}
