package push

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"go.mau.fi/util/glob"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/pushrules"
)

// TestGlobMatchesMautrix checks the compiled glob matcher against
// mautrix's (whose regular expressions define what Myelin matched
// before), pattern by value.
func TestGlobMatchesMautrix(t *testing.T) {
	patterns := []string{
		"", "*", "?", "??", "a", "A", "abc", "a*", "*a", "*a*", "a*c", "a?c", "a*b*c", "*a?c*", "?*", "*?",
		"**", "a**b", "*b*c*d", "ab*ab", "a*a*a", "é*", "?é", "*É?", "m.room.*", "!room:hs1.test", "@*:hs1.test",
		"*.test", "a?*?b", "x*y?z*", "*ab*ab*",
	}
	values := []string{
		"", "a", "b", "abc", "ABC", "aXc", "abbc", "ac", "abcabc", "aaa", "aa", "ab ab", "élan", "Éa", "aé",
		"m.room.message", "m.roomy", "!room:hs1.test", "@alice:hs1.test", "@alice:hs2.test", "x.test",
		"abab", "ababab", "xayzq", "xyz", "bcd", "zbzczd",
	}
	for _, p := range patterns {
		mine := compileGlob(p)
		theirs := glob.CompileWithImplicitContains(p)
		for _, v := range values {
			want := theirs != nil && theirs.Match(v)
			if got := mine.match(v); got != want {
				t.Errorf("pattern %q, value %q: got %v, mautrix %v", p, v, got, want)
			}
		}
	}
}

type testRoom struct{}

func (testRoom) GetOwnDisplayname() string { return "Alice" }
func (testRoom) GetMemberCount() int       { return 2 }

func evaluatorFor(t *testing.T, user string, mine []*Rule, kind string) *evalRuleset {
	t.Helper()
	rules := defaultRules(user)
	*rules.kind(kind) = append(mine, *rules.kind(kind)...)
	rs, bad, err := evaluatorRules(rules)
	if err != nil || len(bad) > 0 {
		t.Fatal(err, bad)
	}
	return rs
}

// TestCompiledRulesMatchMautrix checks that evaluating compiled rules
// gives the actions mautrix's evaluator gives, for the server-default
// rules and rules of each kind, over a set of events.
func TestCompiledRulesMatchMautrix(t *testing.T) {
	const user = "@alice:hs1.test"
	pattern := func(p string) *string { return &p }
	notify := json.RawMessage(`["notify",{"set_tweak":"sound","value":"x"}]`)
	sets := map[string][]*Rule{
		"override":  {{RuleID: "o", Enabled: true, Actions: notify, Conditions: json.RawMessage(`[{"kind":"event_match","key":"content.body","pattern":"*sec?et*"}]`)}},
		"content":   {{RuleID: "c", Enabled: true, Actions: notify, Pattern: pattern("ban*na")}},
		"room":      {{RuleID: "!r:hs1.test", Enabled: true, Actions: notify}},
		"sender":    {{RuleID: "@bob:hs1.test", Enabled: true, Actions: json.RawMessage(`[]`)}},
		"underride": {{RuleID: "u", Enabled: true, Actions: notify, Conditions: json.RawMessage(`[{"kind":"event_match","key":"content.m\\.x","pattern":"1"}]`)}},
	}
	events := []*event.Event{}
	for i, c := range []map[string]any{
		{"msgtype": "m.text", "body": "hello"},
		{"msgtype": "m.text", "body": "a SECRET plan"},
		{"msgtype": "m.text", "body": "one bandana please"},
		{"msgtype": "m.text", "body": "Alice, look"},
		{"msgtype": "m.text", "body": "@room hi"},
		{"msgtype": "m.text", "body": "hi", "m.mentions": map[string]any{"user_ids": []any{user}}},
		{"m.x": 1},
		{"m": map[string]any{"x": "1"}},
	} {
		for _, room := range []string{"!r:hs1.test", "!other:hs1.test"} {
			for _, sender := range []string{"@bob:hs1.test", "@carol:hs1.test"} {
				events = append(events, &event.Event{ID: id.EventID(fmt.Sprint("$", i)), Type: event.EventMessage,
					RoomID: id.RoomID(room), Sender: id.UserID(sender), Content: event.Content{Raw: c}})
			}
		}
	}
	for kind, mine := range sets {
		theirs := evaluatorFor(t, user, mine, kind)
		compiled, skipped := compileRules(evaluatorFor(t, user, mine, kind), DefaultLimits)
		if skipped != 0 {
			t.Fatalf("%s: %d rules skipped", kind, skipped)
		}
		for _, ev := range events {
			want, _ := json.Marshal(theirs.PushRuleset.GetActions(testRoom{}, ev))
			got, _ := json.Marshal(compiled.GetActions(testRoom{}, ev))
			if string(got) != string(want) {
				t.Errorf("%s rules, event %v in %s from %s: got %s, mautrix %s", kind, ev.Content.Raw, ev.RoomID, ev.Sender, got, want)
			}
		}
	}
}

// TestStoredRulesOverLimitsAreNotEvaluated checks that rules stored
// before the limits existed (or under larger ones) never reach the
// evaluator: a megabyte pattern, too many conditions, and rules past
// the count.
func TestStoredRulesOverLimitsAreNotEvaluated(t *testing.T) {
	const user = "@alice:hs1.test"
	lim := Limits{MaxRules: 2, MaxConditions: 2, MaxPatternLength: 64}
	huge := strings.Repeat("a*", 1<<19)
	notify := json.RawMessage(`["notify"]`)
	cond := `{"kind":"event_match","key":"content.body","pattern":"*x*"}`
	mine := []*Rule{
		{RuleID: "huge", Enabled: true, Actions: notify, Conditions: json.RawMessage(`[{"kind":"event_match","key":"content.body","pattern":"` + huge + `"}]`)},
		{RuleID: "many", Enabled: true, Actions: notify, Conditions: json.RawMessage(`[` + cond + `,` + cond + `,` + cond + `]`)},
		{RuleID: "first", Enabled: true, Actions: notify, Conditions: json.RawMessage(`[{"kind":"event_match","key":"content.body","pattern":"one"}]`)},
		{RuleID: "second", Enabled: true, Actions: notify, Conditions: json.RawMessage(`[{"kind":"event_match","key":"content.body","pattern":"two"}]`)},
		{RuleID: "third", Enabled: true, Actions: notify, Conditions: json.RawMessage(`[{"kind":"event_match","key":"content.body","pattern":"three"}]`)},
	}
	compiled, skipped := compileRules(evaluatorFor(t, user, mine, "override"), lim)
	// huge and many are over the limits; first and second use up
	// MaxRules, so third is past the count.
	if skipped != 3 {
		t.Fatalf("skipped %d rules, want 3", skipped)
	}
	var ids []string
	for _, r := range compiled.override {
		if !r.Default {
			ids = append(ids, r.RuleID)
		}
	}
	if strings.Join(ids, ",") != "first,second" {
		t.Fatalf("evaluated user rules %v, want first,second", ids)
	}
	ev := func(body string) *event.Event {
		return &event.Event{Type: event.EventMessage, RoomID: "!r:hs1.test", Sender: "@bob:hs1.test",
			Content: event.Content{Raw: map[string]any{"msgtype": "m.text", "body": body}}}
	}
	// A body the huge pattern and the three-condition rule would match
	// gets the defaults' answer: notify as a plain message in a 2-member
	// room (.m.rule.room_one_to_one), not the user's rule.
	for _, body := range []string{"aaaa x", "three"} {
		got, _ := json.Marshal(compiled.GetActions(testRoom{}, ev(body)))
		want, _ := json.Marshal(genericRulesFor(t, user).GetActions(testRoom{}, ev(body)))
		if string(got) != string(want) {
			t.Fatalf("body %q: got %s, want the defaults' %s", body, got, want)
		}
	}
	// Every event_match glob was compiled when the rules were loaded,
	// none is left to compile per event.
	for _, r := range compiled.override {
		for _, c := range r.conds {
			if c.Kind == pushrules.KindEventMatch && c.glob == nil {
				t.Fatalf("rule %s: event_match condition not compiled", r.RuleID)
			}
		}
	}
}

func genericRulesFor(t *testing.T, user string) *compiledRules {
	c, _ := compileRules(evaluatorFor(t, user, nil, "override"), DefaultLimits)
	return c
}
