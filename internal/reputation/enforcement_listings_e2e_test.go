package reputation_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestReputationUserDirectoryOverFederation: hs2's user directory leaves
// out a user of hs3 that hs1's feed lists, by a hashed user rule and by a
// rule on hs3 itself, even for hs2's users who share a room with them
// (issue 16 item 5, on the three servers of the done-when list); removing
// each rule finds the user again.
func TestReputationUserDirectoryOverFederation(t *testing.T) {
	f := enfFederated(t)
	admins, hs2, feed, bob, carol := f.admins, f.hs2, f.feed, f.bob, f.carol
	testserver.Room(t, carol, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Shared"}, bob)
	found := func() bool {
		resp, err := bob.SearchUserDirectory(context.Background(), "carol", 10)
		if err != nil {
			t.Fatalf("user directory: %v", err)
		}
		for _, u := range resp.Results {
			if u.UserID == carol.UserID {
				return true
			}
		}
		return false
	}
	// hs2 learns of carol's membership with the room's state, which a
	// partial-state join brings in the background.
	deadline := time.Now().Add(20 * time.Second)
	for !found() {
		if time.Now().After(deadline) {
			t.Fatal("bob does not find carol before any rule: the checks below could not fail")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, c := range []struct {
		kind, entity string
		publish      func()
	}{
		{"user", carol.UserID.String(), func() {
			enfHashedRule(t, admins[0], feed, "user", "carol", carol.UserID.String(), "m.ban", "spam")
		}},
		{"server", "hs3.test", func() {
			enfRule(t, admins[0], feed, "server", "hs3", "hs3.test", "m.ban", "spam server")
		}},
	} {
		c.publish()
		enfWaitListed(t, hs2, admins[1], "user_directory", c.kind, c.entity, true)
		if found() {
			t.Errorf("bob finds carol while the feed lists %s %s", c.kind, c.entity)
		}
		enfRule(t, admins[0], feed, c.kind, map[string]string{"user": "carol", "server": "hs3"}[c.kind], "", "", "")
		enfWaitListed(t, hs2, admins[1], "user_directory", c.kind, c.entity, false)
		if !found() {
			t.Errorf("bob does not find carol once the %s rule is removed", c.kind)
		}
	}
}

// TestReputationRemoteDirectory: another server's room directory read
// through hs2 (`/publicRooms?server=`) leaves out a room hs1's feed
// lists, for hs2's users and for anonymous callers alike, as hs2's own
// directory does; removing the rule lists it again.
func TestReputationRemoteDirectory(t *testing.T) {
	f := enfFederated(t)
	admins, hs2, feed, bob, carol := f.admins, f.hs2, f.feed, f.bob, f.carol
	created, err := carol.CreateRoom(context.Background(), &mautrix.ReqCreateRoom{Preset: "public_chat", Visibility: "public", Name: "hs3's room"})
	if err != nil {
		t.Fatal(err)
	}
	listed := func(token string) bool {
		status, body := hs2.Do(t, http.MethodGet, "/_matrix/client/v3/publicRooms?server=hs3.test", token, nil)
		testserver.WantStatus(t, "hs3's directory through hs2", status, body, http.StatusOK)
		chunk, _ := body["chunk"].([]any)
		for _, c := range chunk {
			if m, _ := c.(map[string]any); m["room_id"] == created.RoomID.String() {
				return true
			}
		}
		return false
	}
	callers := []struct {
		who, token string
	}{{"bob", bob.AccessToken}, {"an anonymous caller", ""}}
	for _, c := range callers {
		if !listed(c.token) {
			t.Fatalf("%s does not see hs3's room before any rule: the checks below could not fail", c.who)
		}
	}
	room := created.RoomID
	enfRule(t, admins[0], feed, "room", "r", room.String(), "m.ban", "illegal content")
	enfWaitListed(t, hs2, admins[1], "directory", "room", room.String(), true)
	for _, c := range callers {
		if listed(c.token) {
			t.Errorf("%s sees a listed room in hs3's directory through hs2", c.who)
		}
	}
	enfRule(t, admins[0], feed, "room", "r", "", "", "")
	enfWaitListed(t, hs2, admins[1], "directory", "room", room.String(), false)
	for _, c := range callers {
		if !listed(c.token) {
			t.Errorf("%s does not see hs3's room once the rule is removed", c.who)
		}
	}
}
