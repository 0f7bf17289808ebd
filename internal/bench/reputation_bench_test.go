package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/reputation"
)

// Reputation feeds (issue 16, item 10): 100,000 rules over 5 feeds, the
// blend an enforcement point asks. Each feed holds 20,000 rules: 60 %
// literal user IDs, 20 % hashed user IDs (MSC4205), 10 % server globs
// (*.spamN.test) and 10 % user globs (@spamN*:hs.test); rule event JSON
// as a policy room holds it.
const (
	repFeeds        = 5
	repRulesPerFeed = 20_000
)

func repRule(t testing.TB, typ string, content map[string]any) []byte {
	raw, err := json.Marshal(content)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// repFeed is one feed's rules; feed f's entities overlap with feed f-1's
// by half, so that blends combine.
func repFeed(t testing.TB, f int) []reputation.StateRule {
	rules := make([]reputation.StateRule, 0, repRulesPerFeed)
	for i := range repRulesPerFeed {
		n := f*repRulesPerFeed/2 + i
		var typ string
		var c map[string]any
		switch {
		case i%10 < 6:
			typ, c = "m.policy.rule.user", map[string]any{"entity": fmt.Sprintf("@user%d:hs%d.test", n, n%97), "recommendation": "m.ban", "reason": "spam"}
		case i%10 < 8:
			typ, c = "m.policy.rule.user", map[string]any{"org.matrix.msc4205.hashes": map[string]string{"sha256": reputation.HashString(fmt.Sprintf("@hidden%d:hs.test", n))}, "recommendation": "org.matrix.msc4204.takedown"}
		case i%10 == 8:
			typ, c = "m.policy.rule.server", map[string]any{"entity": fmt.Sprintf("*.spam%d.test", n), "recommendation": "m.ban"}
		default:
			typ, c = "m.policy.rule.user", map[string]any{"entity": fmt.Sprintf("@spam%d*:hs.test", n), "recommendation": "m.ban"}
		}
		rules = append(rules, reputation.StateRule{Type: typ, StateKey: fmt.Sprintf("rule:%d", n), Content: repRule(t, typ, c)})
	}
	return rules
}

func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkReputation reports the rule set's memory (heap delta after
// loading 100,000 rules, their JSON freed), the cost of Check for
// literal, hashed and glob hits and for an entity no rule lists, and
// how long a rule change takes to apply.
func BenchmarkReputation(b *testing.B) {
	feeds := make([][]reputation.StateRule, repFeeds)
	for f := range feeds {
		feeds[f] = repFeed(b, f)
	}
	before := heap()
	blend := reputation.NewBlender(reputation.Policy{}, nil)
	start, cpu := time.Now(), processCPU()
	for f := range feeds {
		room := fmt.Sprintf("!feed%d:hs.test", f)
		blend.SetFeed(room, 0.5, false)
		blend.LoadRules(room, feeds[f])
	}
	load, loadCPU := time.Since(start), processCPU()-cpu
	feeds = nil
	after := heap()
	b.Logf("100,000 rules: heap %.1f MB, loaded in %v (CPU %v)", float64(after-before)/(1<<20), load, loadCPU)
	ctx := context.Background()
	check := func(name string, kind reputation.Kind, entity string, wantListed bool) {
		b.Run("check-"+name, func(b *testing.B) {
			if v := blend.Check(ctx, reputation.ActionEvents, kind, entity, ""); v.Listed != wantListed {
				b.Fatalf("%s: %+v", entity, v)
			}
			b.ReportAllocs()
			cpu := processCPU()
			for b.Loop() {
				blend.Check(ctx, reputation.ActionEvents, kind, entity, "")
			}
			reportCPU(b, cpu, 1)
		})
	}
	// Entities 10,000-19,999 are in feeds 0 and 1 (score 1.0).
	check("literal", reputation.KindUser, "@user10000:hs9.test", true)
	check("hashed", reputation.KindUser, "@hidden10006:hs.test", true)
	check("glob-server", reputation.KindServer, "a.spam10008.test", true)
	check("glob-user", reputation.KindUser, "@spam10009xyz:hs.test", true)
	check("miss", reputation.KindUser, "@nobody:elsewhere.test", false)
	b.Run("rule-change", func(b *testing.B) {
		room := "!feed0:hs.test"
		add := repRule(b, "", map[string]any{"entity": "@new:hs.test", "recommendation": "m.ban"})
		cpu := processCPU()
		for b.Loop() {
			blend.SetRule(room, reputation.StateRule{Type: "m.policy.rule.user", StateKey: "new", Content: add})
			blend.SetRule(room, reputation.StateRule{Type: "m.policy.rule.user", StateKey: "new"})
		}
		reportCPU(b, cpu, 2)
	})
	b.Run("reload-feed-20k", func(b *testing.B) {
		rules := repFeed(b, 0)
		cpu := processCPU()
		for b.Loop() {
			blend.LoadRules("!feed0:hs.test", rules)
		}
		reportCPU(b, cpu, 1)
	})
}

// BenchmarkReputationGlobHeavy is the glob index's worst case: 10,000
// user globs (2,000 in each of 5 feeds) that share their literal ends
// ("@*wordN*:hs.test"), so that every check of a user of hs.test tries
// them all.
func BenchmarkReputationGlobHeavy(b *testing.B) {
	blend := reputation.NewBlender(reputation.Policy{}, nil)
	for f := range repFeeds {
		room := fmt.Sprintf("!feed%d:hs.test", f)
		blend.SetFeed(room, 1, false)
		rules := make([]reputation.StateRule, 0, 2000)
		for i := range 2000 {
			rules = append(rules, reputation.StateRule{Type: "m.policy.rule.user", StateKey: fmt.Sprint(i),
				Content: repRule(b, "", map[string]any{"entity": fmt.Sprintf("@*word%d*:hs.test", f*2000+i), "recommendation": "m.ban"})})
		}
		blend.LoadRules(room, rules)
	}
	ctx := context.Background()
	b.ReportAllocs()
	cpu := processCPU()
	for b.Loop() {
		blend.Check(ctx, reputation.ActionEvents, reputation.KindUser, "@someone:hs.test", "")
	}
	reportCPU(b, cpu, 1)
}

// reportCPU reports the process's CPU per operation (ops per loop
// iteration) since cpu: on a shared machine, wall time per operation
// counts the time other processes held the cores.
func reportCPU(b *testing.B, cpu time.Duration, ops int) {
	b.ReportMetric(float64(processCPU()-cpu)/float64(b.N*ops), "cpu-ns/op")
}
