package push_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestPushRuleLimits checks every push rule limit: over it, 400
// M_TOO_LARGE (M_USER_LIMIT_EXCEEDED with an info_uri for the number of
// rules, a limit of the account: spec v1.18) and nothing stored; at it,
// accepted.
func TestPushRuleLimits(t *testing.T) {
	testserver.EachEngine(t, func(c *config.Config) {
		c.Limits.PushRules = config.PushRuleLimits{MaxRules: 3, MaxConditions: 4, MaxPatternLength: 64}
	}, func(t *testing.T, s *testserver.Server) {
		tok := s.Register("alice", "pw-alice-1").AccessToken
		put := func(kind, id string, body any) testserver.Response {
			return testserver.Send(t, nil, "PUT", s.URL+rulesPath+kind+"/"+id, tok, body)
		}
		tooLarge := func(what string, r testserver.Response) {
			t.Helper()
			if r.Status != http.StatusBadRequest || r.JSON["errcode"] != "M_TOO_LARGE" {
				t.Fatalf("%s: got %d %s, want 400 M_TOO_LARGE", what, r.Status, r.Raw)
			}
		}
		ok := func(what string, r testserver.Response) {
			t.Helper()
			if r.Status != http.StatusOK {
				t.Fatalf("%s: got %d %s, want 200", what, r.Status, r.Raw)
			}
		}
		notify := []any{"notify"}
		cond := func(key, pattern string) map[string]any {
			return map[string]any{"kind": "event_match", "key": key, "pattern": pattern}
		}
		at, over := strings.Repeat("a*", 32), strings.Repeat("a*", 32)+"a"

		tooLarge("pattern over", put("content", "c1", map[string]any{"actions": notify, "pattern": over}))
		ok("pattern at", put("content", "c1", map[string]any{"actions": notify, "pattern": at}))
		tooLarge("condition pattern over", put("override", "o1", map[string]any{"actions": notify,
			"conditions": []any{cond("content.body", over)}}))
		tooLarge("condition key over", put("override", "o1", map[string]any{"actions": notify,
			"conditions": []any{cond("content."+strings.Repeat("k", 64), "x")}}))
		tooLarge("condition value over", put("override", "o1", map[string]any{"actions": notify,
			"conditions": []any{map[string]any{"kind": "event_property_is", "key": "content.x", "value": over}}}))
		five := []any{cond("type", "a"), cond("type", "b"), cond("type", "c"), cond("type", "d"), cond("type", "e")}
		tooLarge("conditions over", put("override", "o1", map[string]any{"actions": notify, "conditions": five}))
		ok("conditions at", put("override", "o1", map[string]any{"actions": notify, "conditions": five[:4]}))
		tooLarge("actions over", put("override", "o2", map[string]any{"actions": []any{"notify", "notify", "notify", "notify", "notify"}}))
		tooLarge("rule ID over", put("override", strings.Repeat("r", 65), map[string]any{"actions": notify}))
		ok("third rule", put("underride", "u1", map[string]any{"actions": notify}))
		wantUserLimit(t, "fourth rule", put("underride", "u2", map[string]any{"actions": notify}))
		// Changing a rule one has is not a new rule.
		ok("update at the limit", put("underride", "u1", map[string]any{"actions": []any{"notify", map[string]any{"set_tweak": "sound", "value": "default"}}}))

		r := testserver.Send(t, nil, "GET", s.URL+rulesPath, tok, nil)
		for _, id := range []string{`"c1"`, `"o1"`, `"u1"`} {
			if !strings.Contains(string(r.Raw), id) {
				t.Fatalf("rule %s missing after the refusals: %s", id, r.Raw)
			}
		}
		for _, id := range []string{`"o2"`, `"u2"`, `"rrrr`} {
			if strings.Contains(string(r.Raw), id) {
				t.Fatalf("refused rule %s was stored: %s", id, r.Raw)
			}
		}
	})
}

// wantUserLimit checks spec v1.18's M_USER_LIMIT_EXCEEDED, whose
// info_uri is required.
func wantUserLimit(t *testing.T, what string, r testserver.Response) {
	t.Helper()
	uri, _ := r.JSON["info_uri"].(string)
	if r.Status != http.StatusBadRequest || r.JSON["errcode"] != "M_USER_LIMIT_EXCEEDED" || !strings.HasPrefix(uri, "https://") {
		t.Fatalf("%s: got %d %s, want 400 M_USER_LIMIT_EXCEEDED with an info_uri", what, r.Status, r.Raw)
	}
}

// TestPushersPerUserBounded checks that a user's pushers, to each of
// which every notification goes, are bounded: the 101st is refused
// (M_USER_LIMIT_EXCEEDED),
// while updating an existing one still works.
func TestPushersPerUserBounded(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		tok := s.Register("alice", "pw-alice-1").AccessToken
		set := func(key string) testserver.Response {
			return testserver.Send(t, nil, "POST", s.URL+"/_matrix/client/v3/pushers/set", tok, map[string]any{
				"kind": "http", "app_id": "a", "pushkey": key, "app_display_name": "A", "device_display_name": "D",
				"lang": "en", "append": true, "data": map[string]any{"url": "https://push.example/_matrix/push/v1/notify"}})
		}
		for i := range 100 {
			if r := set("k" + strconv.Itoa(i)); r.Status != http.StatusOK {
				t.Fatalf("pusher %d: %d %s", i, r.Status, r.Raw)
			}
		}
		wantUserLimit(t, "101st pusher", set("k100"))
		if r := set("k7"); r.Status != http.StatusOK {
			t.Fatalf("updating a pusher at the limit: %d %s", r.Status, r.Raw)
		}
	})
}
