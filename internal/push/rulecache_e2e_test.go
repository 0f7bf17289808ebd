package push_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/pushrules"

	"github.com/myelin-chat/myelin/internal/accountdata"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// notifiedBy sends body to room as sender, then a fence message to
// fence that always notifies c: evaluation runs in order, so once the
// fence's notification is there the message was judged. It answers
// whether the message notified c, and whether it highlighted.
func notifiedBy(t *testing.T, s *testserver.Server, c, sender *mautrix.Client, room, fence id.RoomID, body string) (notified, highlight bool) {
	t.Helper()
	evID := send(t, sender, room, text(body))
	fenceID := send(t, sender, fence, text("fence"))
	deadline := time.Now().Add(10 * time.Second)
	for {
		list, _ := notifications(t, s, c, "limit=100")
		fenced := false
		for _, n := range list {
			switch eventIDOf(n) {
			case string(fenceID):
				fenced = true
			case string(evID):
				notified, highlight = true, highlighted(n)
			}
		}
		if fenced {
			return notified, highlight
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fence after %q never notified %s", body, c.UserID)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A change of a user's rules acts on the very next event, though their
// rule set is cached from the event before: through each push rules
// endpoint, and through an m.push_rules write the service did not make
// (as another process's would reach it, on the bus).
func TestRuleChangeActsOnNextEvent(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice, bob := s.Register("alice", "pw-alice-1"), s.Register("bob", "pw-bob-1")
		carol := s.Register("carol", "pw-carol-1")
		room := publicRoom(t, bob, alice, carol)
		fence := publicRoom(t, bob, alice)
		step := func(name string, wantNotified, wantHighlight bool) {
			t.Helper()
			n, h := notifiedBy(t, s, alice, bob, room, fence, name)
			if n != wantNotified || h != wantHighlight {
				t.Fatalf("%s: notified %v highlight %v, want %v %v", name, n, h, wantNotified, wantHighlight)
			}
		}
		step("cached", true, false)

		roomRule := rulesPath + "room/" + url.PathEscape(string(room))
		if err := alice.PutPushRule(ctx, "global", pushrules.RoomRule, string(room), &mautrix.ReqPutPushRule{Actions: []*pushrules.PushAction{}}); err != nil {
			t.Fatal(err)
		}
		step("rule added", false, false)

		status, body := s.Do(t, http.MethodPut, roomRule+"/enabled", alice.AccessToken, map[string]any{"enabled": false})
		testserver.WantStatus(t, "disable", status, body, http.StatusOK)
		step("rule disabled", true, false)
		status, body = s.Do(t, http.MethodPut, roomRule+"/enabled", alice.AccessToken, map[string]any{"enabled": true})
		testserver.WantStatus(t, "enable", status, body, http.StatusOK)
		step("rule enabled", false, false)

		status, body = s.Do(t, http.MethodPut, roomRule+"/actions", alice.AccessToken,
			map[string]any{"actions": []any{"notify", map[string]any{"set_tweak": "highlight"}}})
		testserver.WantStatus(t, "actions", status, body, http.StatusOK)
		step("actions changed", true, true)

		if err := alice.DeletePushRule(ctx, "global", pushrules.RoomRule, string(room)); err != nil {
			t.Fatal(err)
		}
		step("rule removed", true, false)

		status, body = s.Do(t, http.MethodPut, rulesPath+"underride/.m.rule.message/enabled", alice.AccessToken, map[string]any{"enabled": false})
		testserver.WantStatus(t, "disable default", status, body, http.StatusOK)
		step("default disabled", false, false)

		// Written past the push service: only the bus tells it.
		err := s.AccountData().Update(ctx, string(alice.UserID), "", accountdata.TypePushRules, func(old json.RawMessage) (json.RawMessage, error) {
			var stored map[string]any
			if err := json.Unmarshal(old, &stored); err != nil {
				return nil, err
			}
			delete(stored, "defaults")
			return json.Marshal(stored)
		})
		if err != nil {
			t.Fatal(err)
		}
		step("default enabled elsewhere", true, false)
	})
}

// The display name a contains_display_name rule looks for is the one of
// the event's room state, not one cached with the rules.
func TestDisplayNameChangeActsOnNextEvent(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice, bob := s.Register("alice", "pw-alice-1"), s.Register("bob", "pw-bob-1")
		carol := s.Register("carol", "pw-carol-1")
		room := publicRoom(t, bob, alice, carol)
		fence := publicRoom(t, bob, alice)
		err := alice.PutPushRule(ctx, "global", pushrules.OverrideRule, "my-name", &mautrix.ReqPutPushRule{
			Conditions: []*pushrules.PushCondition{{Kind: pushrules.KindContainsDisplayName}},
			Actions:    []*pushrules.PushAction{{Action: pushrules.ActionNotify}, {Action: pushrules.ActionSetTweak, Tweak: pushrules.TweakHighlight}},
		})
		if err != nil {
			t.Fatal(err)
		}
		rename := func(name string) {
			t.Helper()
			if err := alice.SetDisplayName(ctx, name); err != nil {
				t.Fatal(err)
			}
			// The profile reaches the room's member event on its way.
			path := "/_matrix/client/v3/rooms/" + url.PathEscape(string(room)) + "/state/m.room.member/" + url.PathEscape(string(alice.UserID))
			deadline := time.Now().Add(10 * time.Second)
			for {
				status, body := s.Do(t, http.MethodGet, path, alice.AccessToken, nil)
				if status == http.StatusOK && body["displayname"] == name {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("member event: %d %v", status, body)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		rename("Zebra")
		if _, h := notifiedBy(t, s, alice, bob, room, fence, "hello Zebra"); !h {
			t.Fatal("the first name did not highlight")
		}
		rename("Quokka")
		if _, h := notifiedBy(t, s, alice, bob, room, fence, "hello Zebra"); h {
			t.Fatal("the old name highlighted")
		}
		if _, h := notifiedBy(t, s, alice, bob, room, fence, "hello Quokka"); !h {
			t.Fatal("the new name did not highlight")
		}
	})
}

// The rule set cache holds as many users as it is given room for, and
// the users it dropped are still judged by their own rules.
func TestRulesetCacheBounded(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		s.Push().BoundRulesets(2)
		bob := s.Register("bob", "pw-bob-1")
		var users []*mautrix.Client
		for _, name := range []string{"u1", "u2", "u3", "u4"} {
			users = append(users, s.Register(name, "pw-"+name+"-1"))
		}
		room := publicRoom(t, bob, users...)
		// u4 mutes the room: its rules are its own, not the defaults.
		if err := users[3].PutPushRule(ctx, "global", pushrules.RoomRule, string(room), &mautrix.ReqPutPushRule{Actions: []*pushrules.PushAction{}}); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			send(t, bob, room, text("hello"))
			for _, u := range users[:3] {
				waitNotifications(t, s, u, i+1)
			}
			if n := s.Push().CachedRulesets(); n > 2 {
				t.Fatalf("%d rule sets cached, bound 2", n)
			}
		}
		waitNotifications(t, s, users[3], 0)
	})
}
