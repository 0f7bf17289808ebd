package push_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/myelin-chat/myelin/internal/accountdata"
	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestUnloadableStoredRuleIsSkipped checks that a push rule stored
// before rules were validated (a condition whose key is a number) is
// skipped: its owner's other rules and the defaults still apply, and the
// other members of the room are notified as before. Before, the rule
// made loading the owner's ruleset fail, and with it the evaluation of
// every event in the owner's rooms, for everyone.
func TestUnloadableStoredRuleIsSkipped(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice, bob, carol := s.Register("alice", "pw-alice-1"), s.Register("bob", "pw-bob-1"), s.Register("carol", "pw-carol-1")
		room := publicRoom(t, bob, alice, carol)
		// A valid rule of alice's own, which must still apply.
		r := testserver.Send(t, nil, "PUT", s.URL+rulesPath+"content/fruit", alice.AccessToken, map[string]any{
			"pattern": "pineapple", "actions": []any{"notify", map[string]any{"set_tweak": "highlight"}}})
		testserver.WantStatus(t, "put rule", r.Status, r.JSON, 200)

		// Add the unloadable rule in the store, as older versions
		// accepted it, and restart so that nothing is cached.
		s.Stop()
		db, err := store.Open(ctx, s.Config.Database.URL, 2)
		if err != nil {
			t.Fatal(err)
		}
		uid := string(alice.UserID)
		entries, err := db.AccountDataChanges(ctx, uid, 0, 1<<62)
		if err != nil {
			t.Fatal(err)
		}
		raw, pos := "", int64(0)
		for _, e := range entries {
			if e.RoomID == "" && e.Type == accountdata.TypePushRules {
				raw, pos = e.Content, e.StreamPos
			}
		}
		var stored map[string]any
		if err := json.Unmarshal([]byte(raw), &stored); err != nil {
			t.Fatal(err)
		}
		rules := stored["rules"].(map[string]any)
		override, _ := rules["override"].([]any)
		rules["override"] = append([]any{map[string]any{"rule_id": "bad", "enabled": true, "actions": []any{"notify"},
			"conditions": []any{map[string]any{"kind": "event_match", "key": 1}}}}, override...)
		changed, _ := json.Marshal(stored)
		if err := db.PutAccountData(ctx, uid, "", accountdata.TypePushRules, string(changed), pos); err != nil {
			t.Fatal(err)
		}
		db.Close()
		s.Restart()
		s.Repoint(alice)
		s.Repoint(bob)
		s.Repoint(carol)

		send(t, bob, room, text("a pineapple"))
		send(t, bob, room, text("hello"))
		// alice: her own rule highlights the first, the default
		// .m.rule.message notifies the second.
		got := waitNotifications(t, s, alice, 2)
		if !highlighted(got[1]) || highlighted(got[0]) {
			t.Fatalf("alice's notifications (newest first) %v: want the pineapple one highlighted by her rule, hello not", got)
		}
		// carol, with default rules, is notified of both.
		waitNotifications(t, s, carol, 2)
	})
}
