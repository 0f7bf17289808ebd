package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/myelin-chat/myelin/internal/reputation"
)

// BenchmarkReputationHidesEvents measures what the reputation feeds add
// to every read of an event of another server's user (issue 16 item 5):
// rooms.Visibility.CanSee and push ask reputation.Points.HidesEvents,
// which blends the sender's and the sender's server's verdicts. Without
// feeds, and with 100,000 rules over 5 feeds (literal, MSC4205 hashed and
// glob user rules, server rules), for a sender no rule lists (the common
// case: every hashed feed makes Check hash the ID) and for a listed one.
// Events of local users cost a comparison of their server name. The
// globs each have their own literal end (as "@*:spam.example" or
// "*.spam.example" do), which the blend's glob index files them under.
func BenchmarkReputationHidesEvents(b *testing.B) {
	ctx := context.Background()
	full := reputation.NewBlender(reputation.Policy{}, nil)
	for f := range 5 {
		feed := fmt.Sprintf("!feed%d:hs1.test", f)
		full.SetFeed(feed, 1, false)
		var rules []reputation.StateRule
		add := func(typ, key string, content map[string]any) {
			raw, _ := json.Marshal(content)
			rules = append(rules, reputation.StateRule{Type: typ, StateKey: key, Content: raw})
		}
		for i := range 8000 {
			add("m.policy.rule.user", fmt.Sprintf("l%d", i), map[string]any{"entity": fmt.Sprintf("@spam%d-%d:evil.test", f, i), "recommendation": "m.ban"})
			add("m.policy.rule.user", fmt.Sprintf("h%d", i), map[string]any{"recommendation": "m.ban",
				"hashes": map[string]any{"sha256": reputation.HashString(fmt.Sprintf("@hidden%d-%d:evil.test", f, i))}})
		}
		for i := range 2000 {
			add("m.policy.rule.user", fmt.Sprintf("g%d", i), map[string]any{"entity": fmt.Sprintf("@*:spam%d-%d.test", f, i), "recommendation": "m.ban"})
			add("m.policy.rule.server", fmt.Sprintf("s%d", i), map[string]any{"entity": fmt.Sprintf("evil%d-%d.test", f, i), "recommendation": "m.ban"})
		}
		full.LoadRules(feed, rules)
	}
	for _, c := range []struct {
		name   string
		e      reputation.Enforcer
		sender string
		want   bool
	}{
		{"no-feeds/remote", reputation.NewBlender(reputation.Policy{}, nil), "@alice:other.test", false},
		{"100k-rules/local", full, "@alice:hs2.test", false},
		{"100k-rules/remote-unlisted", full, "@alice:other.test", false},
		{"100k-rules/remote-listed", full, "@spam3-42:evil.test", true},
	} {
		p := reputation.NewPoints(c.e, "hs2.test")
		if p.HidesEvents(ctx, c.sender) != c.want {
			b.Fatalf("%s: HidesEvents(%s) != %v", c.name, c.sender, c.want)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.HidesEvents(ctx, c.sender)
			}
		})
	}
}
