package push_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/pushrules"

	"github.com/myelin-chat/myelin/internal/testserver"
)

const rulesPath = "/_matrix/client/v3/pushrules/global/"

func ruleIDs(rules pushrules.PushRuleArray) []string {
	var out []string
	for _, r := range rules {
		out = append(out, r.RuleID)
	}
	return out
}

func TestDefaultPushRules(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw-alice-1")
		rs, err := alice.GetPushRules(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		wantOverride := []string{".m.rule.master", ".m.rule.suppress_notices", ".m.rule.invite_for_me", ".m.rule.member_event",
			".m.rule.is_user_mention", ".m.rule.is_room_mention", ".m.rule.tombstone", ".m.rule.reaction",
			".m.rule.room.server_acl", ".m.rule.suppress_edits", ".org.matrix.msc3930.rule.poll_response"}
		wantUnderride := []string{".m.rule.call", ".m.rule.encrypted_room_one_to_one", ".m.rule.room_one_to_one",
			".m.rule.message", ".m.rule.encrypted",
			".org.matrix.msc3930.rule.poll_start_one_to_one", ".org.matrix.msc3930.rule.poll_start",
			".org.matrix.msc3930.rule.poll_end_one_to_one", ".org.matrix.msc3930.rule.poll_end"}
		if got := ruleIDs(rs.Override); !equal(got, wantOverride) {
			t.Fatalf("override: %v", got)
		}
		if got := ruleIDs(rs.Underride); !equal(got, wantUnderride) {
			t.Fatalf("underride: %v", got)
		}
		if rs.Override[0].Enabled || !rs.Override[1].Enabled || !rs.Override[0].Default {
			t.Fatalf("master: %+v", rs.Override[0])
		}
		// The user's own ID is filled into the templates.
		if v := rs.Override[4].Conditions[0].Value; v != string(alice.UserID) {
			t.Fatalf("is_user_mention value: %v", v)
		}
		// The raw answer carries conditions: [] for the master rule and
		// empty lists for the kinds without rules.
		status, body := s.Do(t, http.MethodGet, "/_matrix/client/v3/pushrules/", alice.AccessToken, nil)
		testserver.WantStatus(t, "pushrules", status, body, http.StatusOK)
		global := body["global"].(map[string]any)
		master := global["override"].([]any)[0].(map[string]any)
		if c, ok := master["conditions"].([]any); !ok || len(c) != 0 {
			t.Fatalf("master conditions: %v", master)
		}
		if c, ok := global["content"].([]any); !ok || len(c) != 0 {
			t.Fatalf("content: %v", global["content"])
		}
	})
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func notify() []*pushrules.PushAction {
	return []*pushrules.PushAction{{Action: pushrules.ActionNotify}}
}

func TestPushRuleCRUD(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw-alice-1")
		put := func(id string, req *mautrix.ReqPutPushRule) {
			t.Helper()
			if req.Actions == nil {
				req.Actions = notify()
			}
			if err := alice.PutPushRule(ctx, "global", pushrules.OverrideRule, id, req); err != nil {
				t.Fatalf("put %s: %v", id, err)
			}
		}
		cond := []*pushrules.PushCondition{{Kind: pushrules.KindEventMatch, Key: "type", Pattern: "org.example"}}
		put("a", &mautrix.ReqPutPushRule{Conditions: cond})
		put("b", &mautrix.ReqPutPushRule{Conditions: cond})                   // new rules go first
		put("c", &mautrix.ReqPutPushRule{Conditions: cond, After: "a"})       // right after a
		put("d", &mautrix.ReqPutPushRule{Conditions: cond, Before: "b"})      // right before b
		put("a", &mautrix.ReqPutPushRule{Conditions: cond, Before: "d"})      // moved to the front
		put("c", &mautrix.ReqPutPushRule{Actions: []*pushrules.PushAction{}}) // updated in place
		rs, err := alice.GetPushRules(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{".m.rule.master", "a", "d", "b", "c", ".m.rule.suppress_notices"}
		if got := ruleIDs(rs.Override); !equal(got[:6], want) {
			t.Fatalf("order: %v", got)
		}
		if len(rs.Override[4].Actions) != 0 || rs.Override[4].Default || !rs.Override[4].Enabled {
			t.Fatalf("c after update: %+v", rs.Override[4])
		}

		// A content rule and one rule read back.
		if err := alice.PutPushRule(ctx, "global", pushrules.ContentRule, "cake", &mautrix.ReqPutPushRule{Actions: notify(), Pattern: "cake*"}); err != nil {
			t.Fatal(err)
		}
		rule, err := alice.GetPushRule(ctx, "global", pushrules.ContentRule, "cake")
		if err != nil || rule.Pattern != "cake*" || !rule.Enabled {
			t.Fatalf("content rule: %+v %v", rule, err)
		}

		// Errors.
		err = alice.PutPushRule(ctx, "global", pushrules.OverrideRule, "e", &mautrix.ReqPutPushRule{Actions: notify(), Before: "nope"})
		testserver.WantHTTPError(t, "before unknown", err, http.StatusBadRequest, "M_UNKNOWN")
		err = alice.PutPushRule(ctx, "global", pushrules.OverrideRule, "e", &mautrix.ReqPutPushRule{Actions: notify(), After: ".m.rule.master"})
		testserver.WantHTTPError(t, "after a default", err, http.StatusBadRequest, "M_UNKNOWN")
		err = alice.PutPushRule(ctx, "global", pushrules.OverrideRule, ".m.rule.mine", &mautrix.ReqPutPushRule{Actions: notify()})
		testserver.WantHTTPError(t, "dot rule ID", err, http.StatusBadRequest, "M_INVALID_PARAM")
		err = alice.PutPushRule(ctx, "global", pushrules.OverrideRule, ".m.rule.message", &mautrix.ReqPutPushRule{Actions: notify()})
		testserver.WantHTTPError(t, "overwrite a default", err, http.StatusBadRequest, "M_INVALID_PARAM")
		err = alice.PutPushRule(ctx, "global", pushrules.ContentRule, "nopattern", &mautrix.ReqPutPushRule{Actions: notify()})
		testserver.WantHTTPError(t, "content rule without pattern", err, http.StatusBadRequest, "M_MISSING_PARAM")
		err = alice.DeletePushRule(ctx, "global", pushrules.UnderrideRule, ".m.rule.message")
		testserver.WantHTTPError(t, "delete a default", err, http.StatusBadRequest, "M_INVALID_PARAM")
		err = alice.DeletePushRule(ctx, "global", pushrules.OverrideRule, "nope")
		testserver.WantHTTPError(t, "delete unknown", err, http.StatusNotFound, "M_NOT_FOUND")
		_, err = alice.GetPushRule(ctx, "global", pushrules.OverrideRule, "nope")
		testserver.WantHTTPError(t, "get unknown", err, http.StatusNotFound, "M_NOT_FOUND")
		_, err = alice.GetPushRule(ctx, "global", pushrules.UnderrideRule, ".m.rule.master")
		testserver.WantHTTPError(t, "default of another kind", err, http.StatusNotFound, "M_NOT_FOUND")
		status, body := s.Do(t, http.MethodGet, rulesPath+"sideways/a", alice.AccessToken, nil)
		testserver.WantError(t, "bad kind", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		status, body = s.Do(t, http.MethodPut, rulesPath+"override/f", alice.AccessToken, map[string]any{"actions": []any{"explode"}})
		testserver.WantError(t, "bad action", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		status, body = s.Do(t, http.MethodPut, rulesPath+"override/f", alice.AccessToken, map[string]any{"actions": []any{map[string]any{"set_tweak": "sound", "value": 3}}})
		testserver.WantError(t, "bad sound", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		status, body = s.Do(t, http.MethodPut, rulesPath+"override/f", alice.AccessToken, map[string]any{"conditions": []any{}})
		testserver.WantError(t, "no actions", status, body, http.StatusBadRequest, "M_MISSING_PARAM")
		status, body = s.Do(t, http.MethodPut, rulesPath+"override/nope/enabled", alice.AccessToken, map[string]any{"enabled": false})
		testserver.WantError(t, "enable unknown", status, body, http.StatusNotFound, "M_NOT_FOUND")

		// enabled and actions, on a default rule and on the user's own.
		stream := s.Engine().Stream()
		before := stream.Current()
		if err := alice.SetPushRuleEnabled(ctx, "global", pushrules.UnderrideRule, ".m.rule.message", false); err != nil {
			t.Fatal(err)
		}
		status, body = s.Do(t, http.MethodGet, rulesPath+"underride/.m.rule.message/enabled", alice.AccessToken, nil)
		if status != http.StatusOK || body["enabled"] != false {
			t.Fatalf("enabled: %d %v", status, body)
		}
		if err := alice.PutPushRuleActions(ctx, "global", pushrules.OverrideRule, ".m.rule.suppress_notices", notify()); err != nil {
			t.Fatal(err)
		}
		status, body = s.Do(t, http.MethodGet, rulesPath+"override/.m.rule.suppress_notices/actions", alice.AccessToken, nil)
		if actions, _ := body["actions"].([]any); status != http.StatusOK || len(actions) != 1 || actions[0] != "notify" {
			t.Fatalf("actions: %d %v", status, body)
		}
		if err := alice.SetPushRuleEnabled(ctx, "global", pushrules.OverrideRule, "a", false); err != nil {
			t.Fatal(err)
		}
		if err := alice.DeletePushRule(ctx, "global", pushrules.OverrideRule, "d"); err != nil {
			t.Fatal(err)
		}
		rs, _ = alice.GetPushRules(ctx)
		if got := ruleIDs(rs.Override); !equal(got[:4], []string{".m.rule.master", "a", "b", "c"}) || rs.Override[1].Enabled {
			t.Fatalf("after delete: %v", got)
		}

		// The change reaches /sync as m.push_rules account data.
		global, _, err := s.AccountData().Changes(ctx, string(alice.UserID), before, stream.Current())
		if err != nil || len(global) != 1 || global[0].Type != "m.push_rules" {
			t.Fatalf("changes: %v %v", global, err)
		}
		var content struct {
			Global pushrules.PushRuleset `json:"global"`
		}
		if err := json.Unmarshal(global[0].Content, &content); err != nil {
			t.Fatal(err)
		}
		if r := content.Global.Underride[3]; r.RuleID != ".m.rule.message" || r.Enabled {
			t.Fatalf("synced rule: %+v", r)
		}
	})
}
