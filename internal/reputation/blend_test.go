package reputation

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/myelin-chat/myelin/internal/config"
)

func content(t testing.TB, v any) []byte {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestParseRule(t *testing.T) {
	h := HashString("@yarrgh:example.com")
	hv := HashEntity("@yarrgh:example.com")
	tests := []struct {
		name, typ string
		content   string
		want      Rule
		ok        bool
	}{
		{"ban", "m.policy.rule.user", `{"entity":"@a:x","reason":"spam","recommendation":"m.ban"}`, Rule{Kind: KindUser, Entity: "@a:x", Reason: "spam"}, true},
		{"mjolnir ban", "org.matrix.mjolnir.rule.server", `{"entity":"Evil.COM","recommendation":"org.matrix.mjolnir.ban"}`, Rule{Kind: KindServer, Entity: "evil.com"}, true},
		{"legacy type", "m.room.rule.room", `{"entity":"!r:x","recommendation":"m.ban"}`, Rule{Kind: KindRoom, Entity: "!r:x"}, true},
		{"takedown", "m.policy.rule.user", `{"entity":"@a:x","recommendation":"m.takedown"}`, Rule{Kind: KindUser, Entity: "@a:x", Takedown: true}, true},
		{"unstable takedown", "m.policy.rule.user", `{"entity":"@a:x","recommendation":"org.matrix.msc4204.takedown"}`, Rule{Kind: KindUser, Entity: "@a:x", Takedown: true}, true},
		{"hashes", "m.policy.rule.user", `{"hashes":{"sha256":"` + h + `"},"recommendation":"m.ban"}`, Rule{Kind: KindUser, SHA256: hv, HasHash: true}, true},
		{"unstable hashes unpadded", "m.policy.rule.user", `{"org.matrix.msc4205.hashes":{"sha256":"` + h[:len(h)-1] + `"},"recommendation":"m.ban"}`, Rule{Kind: KindUser, SHA256: hv, HasHash: true}, true},
		{"removed", "m.policy.rule.user", `{}`, Rule{}, false},
		{"unban", "m.policy.rule.user", `{"entity":"@a:x","recommendation":"fi.mau.meowlnir.unban"}`, Rule{}, false},
		{"no entity", "m.policy.rule.user", `{"recommendation":"m.ban"}`, Rule{}, false},
		{"bad hash", "m.policy.rule.user", `{"hashes":{"sha256":"nope"},"recommendation":"m.ban"}`, Rule{}, false},
		{"wrong types", "m.policy.rule.user", `{"entity":5,"reason":[],"recommendation":"m.ban"}`, Rule{}, false},
		{"not a rule", "m.room.message", `{"entity":"@a:x","recommendation":"m.ban"}`, Rule{}, false},
		{"not json", "m.policy.rule.user", `{`, Rule{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseRule(tt.typ, []byte(tt.content))
			if ok != tt.ok || got != tt.want {
				t.Fatalf("ParseRule = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestGlob(t *testing.T) {
	tests := []struct {
		glob, s string
		want    bool
	}{
		{"*", "", true}, {"*", "abc", true}, {"?", "", false}, {"?", "a", true},
		{"*.evil.com", "a.evil.com", true}, {"*.evil.com", "evil.com", false},
		{"@spam*:x", "@spammer:x", true}, {"@spam*:x", "@spam:y", false},
		{"a*b*c", "aXbYc", true}, {"a*b*c", "aXcYb", false}, {"a?c", "abc", true}, {"a?c", "abbc", false},
		{"**a", "bba", true}, {"a*", "b", false},
	}
	for _, tt := range tests {
		if got := compileGlob(tt.glob).match(tt.s); got != tt.want {
			t.Errorf("glob %q on %q = %v, want %v", tt.glob, tt.s, got, tt.want)
		}
	}
}

func check(b *Blender, a Action, k Kind, e string) Verdict {
	return b.Check(context.Background(), a, k, e, "")
}

func TestBlend(t *testing.T) {
	var logged []Decision
	b := NewBlender(Policy{
		Thresholds: map[Action]map[Kind]float64{ActionJoins: {KindRoom: 2}},
		Disabled:   map[Action]map[Kind]bool{ActionMedia: {KindServer: true}},
	}, func(d Decision) { logged = append(logged, d) })
	b.SetFeed("!a:x", 0.5, false)
	b.SetFeed("!b:x", 0.5, false)
	b.SetFeed("!allow:x", 1, true)
	rule := func(feed, typ, key string, c any) {
		b.SetRule(feed, StateRule{Type: typ, StateKey: key, Content: content(t, c)})
	}
	ban := func(e string) map[string]string {
		return map[string]string{"entity": e, "recommendation": "m.ban", "reason": "r-" + e}
	}

	rule("!a:x", "m.policy.rule.user", "1", ban("@both:y"))
	rule("!b:x", "m.policy.rule.user", "1", ban("@both:y"))
	rule("!a:x", "m.policy.rule.user", "2", ban("@one:y"))
	if v := check(b, ActionEvents, KindUser, "@both:y"); !v.Listed || v.Score != 1 || !slices.Equal(v.Feeds, []string{"!a:x", "!b:x"}) || v.Reason != "r-@both:y" {
		t.Fatalf("two half feeds: %+v", v)
	}
	if v := check(b, ActionEvents, KindUser, "@one:y"); v.Listed || v.Score != 0.5 {
		t.Fatalf("one half feed: %+v", v)
	}
	// The allow-list cancels.
	rule("!allow:x", "m.policy.rule.user", "1", ban("@both:y"))
	if v := check(b, ActionEvents, KindUser, "@both:y"); v.Listed || v.Score != 0 {
		t.Fatalf("allow-listed: %+v", v)
	}
	// Removal (empty content) takes the rule away.
	rule("!allow:x", "m.policy.rule.user", "1", map[string]any{})
	if v := check(b, ActionEvents, KindUser, "@both:y"); !v.Listed {
		t.Fatalf("allow rule removed: %+v", v)
	}
	// Globs, hashes, takedown, per-action thresholds and switches.
	b.SetFeed("!c:x", 1, false)
	rule("!c:x", "m.policy.rule.server", "g", ban("*.evil.com"))
	rule("!c:x", "m.policy.rule.user", "h", map[string]any{"hashes": map[string]string{"sha256": HashString("@hidden:y")}, "recommendation": "m.takedown"})
	rule("!c:x", "m.policy.rule.room", "r", ban("!room:y"))
	if v := check(b, ActionEvents, KindServer, "a.EVIL.com"); !v.Listed || v.Takedown {
		t.Fatalf("glob: %+v", v)
	}
	if v := check(b, ActionMedia, KindServer, "a.evil.com"); v.Listed || v.Score != 1 {
		t.Fatalf("disabled action: %+v", v)
	}
	if v := check(b, ActionEvents, KindUser, "@hidden:y"); !v.Listed || !v.Takedown {
		t.Fatalf("hashed takedown: %+v", v)
	}
	if v := check(b, ActionJoins, KindRoom, "!room:y"); v.Listed {
		t.Fatalf("threshold 2: %+v", v)
	}
	if v := check(b, ActionDirectory, KindRoom, "!room:y"); !v.Listed {
		t.Fatalf("default threshold: %+v", v)
	}
	if v := check(b, ActionEvents, KindUser, "@nobody:y"); v.Listed || len(v.Feeds) != 0 {
		t.Fatalf("unlisted: %+v", v)
	}
	// CheckUser takes the server's rule too.
	if v := CheckUser(context.Background(), b, ActionInvites, "@x:b.evil.com", "$ev"); !v.Listed {
		t.Fatalf("CheckUser by server: %+v", v)
	}
	if len(logged) != 1 || logged[0].Entity != "b.evil.com" || logged[0].Detail != "$ev" || logged[0].Action != ActionInvites {
		t.Fatalf("decisions logged: %+v", logged)
	}
	b.RemoveFeed("!c:x")
	if v := check(b, ActionEvents, KindServer, "a.evil.com"); v.Listed {
		t.Fatalf("feed removed: %+v", v)
	}
}

func TestGlobIndexRemoval(t *testing.T) {
	b := NewBlender(Policy{}, nil)
	b.SetFeed("!f:x", 1, false)
	for i := range 50 {
		b.SetRule("!f:x", StateRule{Type: "m.policy.rule.user", StateKey: fmt.Sprint(i),
			Content: content(t, map[string]string{"entity": fmt.Sprintf("@spam%d*:x", i), "recommendation": "m.ban"})})
	}
	b.SetRule("!f:x", StateRule{Type: "m.policy.rule.user", StateKey: "open", Content: content(t, map[string]string{"entity": "*", "recommendation": "m.ban"})})
	if !check(b, ActionEvents, KindUser, "@ham:x").Listed {
		t.Fatal("* lists everyone")
	}
	b.SetRule("!f:x", StateRule{Type: "m.policy.rule.user", StateKey: "open"})
	if check(b, ActionEvents, KindUser, "@ham:x").Listed || !check(b, ActionEvents, KindUser, "@spam7abc:x").Listed {
		t.Fatal("after removing *")
	}
	for i := range 50 {
		b.SetRule("!f:x", StateRule{Type: "m.policy.rule.user", StateKey: fmt.Sprint(i)})
	}
	if check(b, ActionEvents, KindUser, "@spam7abc:x").Listed || b.RuleCount("!f:x") != 0 {
		t.Fatal("after removing every glob")
	}
}

func FuzzParseRule(f *testing.F) {
	f.Add("m.policy.rule.user", []byte(`{"entity":"@a:x","reason":"spam","recommendation":"m.ban"}`))
	f.Add("m.policy.rule.server", []byte(`{"entity":"*.x","recommendation":"org.matrix.msc4204.takedown"}`))
	f.Add("m.policy.rule.user", []byte(`{"org.matrix.msc4205.hashes":{"sha256":"VPqwbUV7mMMkOVto3kPwsNXXiALMs7VCKWh3OeqqjGs="},"recommendation":"m.takedown"}`))
	f.Add("org.matrix.mjolnir.rule.room", []byte(`{}`))
	f.Fuzz(func(t *testing.T, typ string, raw []byte) {
		r, ok := ParseRule(typ, raw)
		if !ok {
			return
		}
		if r.Entity == "" && !r.HasHash {
			t.Fatalf("rule without entity or hash: %+v", r)
		}
		// Whatever parses can be indexed, matched and removed.
		b := NewBlender(Policy{}, nil)
		b.SetFeed("!f:x", 1, false)
		b.SetRule("!f:x", StateRule{Type: typ, StateKey: "", Content: raw})
		if r.Entity != "" && !r.Glob() && !check(b, ActionEvents, r.Kind, r.Entity).Listed {
			t.Fatalf("literal rule does not list its entity: %+v", r)
		}
		if r.Entity != "" && r.Glob() {
			check(b, ActionEvents, r.Kind, r.Entity)
		}
		b.SetRule("!f:x", StateRule{Type: typ, StateKey: ""})
		if b.RuleCount("!f:x") != 0 {
			t.Fatal("rule not removed")
		}
	})
}

// TestGlobIndexFindsWhatBruteForceFinds: whatever run a glob is filed
// under, the index finds exactly the globs that match, before and after
// removals.
func TestGlobIndexFindsWhatBruteForceFinds(t *testing.T) {
	patterns := []string{"*", "?*", "@*", "*:x.org", "@*spam*:x.org", "@a?c*", "*.evil.*", "*bad*", "@??:x.org", "x*y*z",
		"@*:*.test", "@spam*", "*org", "??", "@*ab*ab*", "*:x.org*"}
	candidates := []string{"", "@abc:x.org", "@spammer:x.org", "a.evil.com", "xyz", "@ab:x.org", "@abab:y.test", "bad", "@x:x.org", "org"}
	var x globIndex
	rules := map[string]*Rule{}
	for _, p := range patterns {
		r := &Rule{Entity: p}
		rules[p] = r
		x.add(&globRule{g: compileGlob(p), rule: r})
	}
	compare := func(stage string) {
		for _, c := range candidates {
			got := map[string]bool{}
			x.each(c, func(r *Rule) bool { got[r.Entity] = true; return true })
			for p := range rules {
				if want := compileGlob(p).match(c); got[p] != want {
					t.Errorf("%s: glob %q on %q: index %v, match %v", stage, p, c, got[p], want)
				}
			}
		}
	}
	compare("all")
	for i, p := range patterns {
		if i%2 == 0 {
			x.remove(rules[p])
			delete(rules, p)
		}
	}
	compare("half removed")
	if x.n != len(rules) {
		t.Fatalf("index counts %d globs, holds %d", x.n, len(rules))
	}
}

func TestPolicyFromConfig(t *testing.T) {
	p := PolicyFromConfig(config.Reputation{
		Thresholds: map[string]map[string]float64{"events": {"server": 2}},
		Disabled:   []string{"media", "joins:room"},
	})
	for _, c := range []struct {
		a  Action
		k  Kind
		t  float64
		on bool
	}{
		{ActionEvents, KindServer, 2, true}, {ActionEvents, KindUser, 1, true}, {ActionMedia, KindServer, 0, false},
		{ActionMedia, KindRoom, 0, false}, {ActionJoins, KindRoom, 0, false}, {ActionJoins, KindUser, 1, true},
	} {
		if th, on := p.threshold(c.a, c.k); th != c.t || on != c.on {
			t.Errorf("%s %s: %v %v, want %v %v", c.a, c.k, th, on, c.t, c.on)
		}
	}
}

// TestBlenderSucceed: an upgraded feed's replacement takes its place
// with its weight and allow flag and its own rules; the old feed's
// rules no longer count; a room that is not a feed has no successor.
func TestBlenderSucceed(t *testing.T) {
	b := NewBlender(Policy{}, nil)
	b.SetFeed("!old:x", 0.5, true)
	b.SetRule("!old:x", StateRule{Type: "m.policy.rule.user", StateKey: "1", Content: content(t, map[string]string{"entity": "@gone:y", "recommendation": "m.ban"})})
	rules := []StateRule{{Type: "m.policy.rule.user", StateKey: "2", Content: content(t, map[string]string{"entity": "@new:y", "recommendation": "m.ban"})}}
	if !b.Succeed("!old:x", "!new:x", rules) {
		t.Fatal("Succeed of a feed reported false")
	}
	if b.Follows("!old:x") || !b.Follows("!new:x") || b.RuleCount("!new:x") != 1 {
		t.Fatalf("after Succeed: old followed %v, new followed %v with %d rules", b.Follows("!old:x"), b.Follows("!new:x"), b.RuleCount("!new:x"))
	}
	if v := check(b, ActionEvents, KindUser, "@gone:y"); v.Score != 0 {
		t.Errorf("the old room's rule still counts: %+v", v)
	}
	if v := check(b, ActionEvents, KindUser, "@new:y"); v.Score != -0.5 || !slices.Equal(v.Feeds, []string{"!new:x"}) {
		t.Errorf("the new room's rule: %+v, want the allow list's -0.5", v)
	}
	if b.Succeed("!nofeed:x", "!other:x", nil) || b.Follows("!other:x") {
		t.Error("Succeed of a room that is not a feed")
	}
}
