package push_test

import (
	"context"
	"net/http"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

func sendTyped(t *testing.T, c *mautrix.Client, roomID id.RoomID, typ string, content map[string]any) id.EventID {
	t.Helper()
	resp, err := c.SendMessageEvent(context.Background(), roomID, event.Type{Type: typ, Class: event.MessageEventType}, content)
	if err != nil {
		t.Fatal(err)
	}
	return resp.EventID
}

func sounds(n map[string]any) bool {
	for _, a := range n["actions"].([]any) {
		if m, ok := a.(map[string]any); ok && m["set_tweak"] == "sound" {
			return true
		}
	}
	return false
}

// TestPollRules checks Synapse's MSC3930 defaults: a poll's start and
// end notify (with a sound between two members), answers do not.
func TestPollRules(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice, bob := s.Register("alice", "pw-alice-1"), s.Register("bob", "pw-bob-1")
		room := publicRoom(t, alice, bob)
		start := sendTyped(t, alice, room, "org.matrix.msc3381.poll.start", map[string]any{"org.matrix.msc3381.poll.start": map[string]any{"question": map[string]any{"body": "Lunch?"}}})
		rel := map[string]any{"m.relates_to": map[string]any{"rel_type": "m.reference", "event_id": start}}
		sendTyped(t, alice, room, "org.matrix.msc3381.poll.response", rel)
		end := sendTyped(t, alice, room, "org.matrix.msc3381.poll.end", rel)
		list := waitNotifications(t, s, bob, 2)
		if eventIDOf(list[0]) != string(end) || eventIDOf(list[1]) != string(start) || !sounds(list[0]) || !sounds(list[1]) {
			t.Fatalf("notifications: %v, want end %s and start %s with sound", list, end, start)
		}
	})
}

// TestPostcontentRules checks MSC4306's postcontent kind: stored and
// read back like an override rule, and evaluated after content rules
// and before room rules, as Synapse does.
func TestPostcontentRules(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice, bob, carol := s.Register("alice", "pw-alice-1"), s.Register("bob", "pw-bob-1"), s.Register("carol", "pw-carol-1")
		room := publicRoom(t, alice, bob, carol)
		status, body := s.Do(t, http.MethodPut, rulesPath+"postcontent/hush", bob.AccessToken, map[string]any{
			"actions":    []any{},
			"conditions": []any{map[string]any{"kind": "event_match", "key": "content.body", "pattern": "*hush*"}}})
		testserver.WantStatus(t, "put postcontent", status, body, http.StatusOK)
		status, body = s.Do(t, http.MethodPut, rulesPath+"room/"+string(room), bob.AccessToken, map[string]any{
			"actions": []any{"notify", map[string]any{"set_tweak": "highlight"}}})
		testserver.WantStatus(t, "put room", status, body, http.StatusOK)
		status, body = s.Do(t, http.MethodPut, rulesPath+"content/cake", bob.AccessToken, map[string]any{"pattern": "cake", "actions": []any{"notify"}})
		testserver.WantStatus(t, "put content", status, body, http.StatusOK)

		status, body = s.Do(t, http.MethodGet, rulesPath+"postcontent/hush", bob.AccessToken, nil)
		testserver.WantStatus(t, "get postcontent", status, body, http.StatusOK)
		if body["rule_id"] != "hush" || body["conditions"] == nil {
			t.Fatalf("postcontent rule: %v", body)
		}
		status, body = s.Do(t, http.MethodGet, "/_matrix/client/v3/pushrules/", bob.AccessToken, nil)
		// The user's rule, then MSC4306's two thread subscription defaults.
		if pc, _ := body["global"].(map[string]any)["postcontent"].([]any); len(pc) != 3 || pc[0].(map[string]any)["rule_id"] != "hush" ||
			pc[2].(map[string]any)["rule_id"] != ".m.rule.subscribed_thread" {
			t.Fatalf("ruleset postcontent: %v", body["global"])
		}

		cake := send(t, alice, room, text("hush, cake")) // content beats postcontent
		send(t, alice, room, text("hush now"))           // postcontent beats room
		plain := send(t, alice, room, text("hello"))     // the room rule
		list := waitNotifications(t, s, bob, 2)
		if eventIDOf(list[0]) != string(plain) || !highlighted(list[0]) || eventIDOf(list[1]) != string(cake) || highlighted(list[1]) {
			t.Fatalf("notifications: %v, want %s highlighted and %s plain", list, plain, cake)
		}
	})
}
