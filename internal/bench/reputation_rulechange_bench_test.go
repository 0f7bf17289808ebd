package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/reputation"
	"github.com/myelin-chat/myelin/internal/testdb"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// BenchmarkReputationRuleApplied measures how long a rule change takes,
// end to end, to be enforced (issue 16 items 2 and 10: within a second of
// the event reaching the server, applied in under 100 ms), with 100,000
// rules over 5 other feeds loaded into the subscribing server's blend:
//
//   - local: the feed room is on the enforcing server; from the start of
//     the admin's PUT of the rule (so the event's persisting and the
//     client round trip count too: an upper bound) until the blend lists
//     the entity;
//   - federated: the feed is on hs1, hs2 subscribes; from the start of
//     the PUT on hs1 until hs2's blend lists the entity, so federation
//     delivery counts too.
//
// Each op adds a rule for a new user, then removes it (both timed).
// Reports p50, p99 and max in ms, and the p99 and max of the part after
// the PUT was answered (the rule may be applied before: 0), which leaves
// out the client's round trip and the feed server's persisting.
func BenchmarkReputationRuleApplied(b *testing.B) {
	for _, engine := range testdb.Engines() {
		b.Run(engine, func(b *testing.B) { reputationRuleApplied(b, engine) })
	}
}

const ruleBenchSecret = "rule-bench-secret"

func reputationRuleApplied(b *testing.B, engine string) {
	ctx := context.Background()
	net := testserver.StartNetwork(b, engine, 2, func(_ int, c *config.Config) {
		benchConfig(c)
		c.Registration.SharedSecret = ruleBenchSecret
	})
	hs1, hs2 := net.Servers[0], net.Servers[1]
	blend, ok := hs2.Reputation().(*reputation.Blender)
	if !ok {
		b.Fatalf("hs2's Enforcer is a %T, not a *reputation.Blender", hs2.Reputation())
	}
	admin1, admin2 := hs1.RegisterAdmin("admin", "password1234"), hs2.RegisterAdmin("admin", "password1234")
	newFeed := func(s *testserver.Server, token string) string {
		status, body := s.Do(b, http.MethodPost, "/_matrix/client/v3/createRoom", token, map[string]any{"preset": "public_chat"})
		if status != http.StatusOK {
			b.Fatalf("create feed: %d %v", status, body)
		}
		return body["room_id"].(string)
	}
	subscribe := func(feed string, via ...string) {
		req := map[string]any{"room": feed, "weight": 1.0}
		if len(via) > 0 {
			req["via"] = via
		}
		if status, body := hs2.Do(b, http.MethodPost, "/_myelin/admin/v1/reputation/feeds", admin2.AccessToken, req); status != http.StatusOK {
			b.Fatalf("subscribe to %s: %d %v", feed, status, body)
		}
	}
	localFeed, remoteFeed := newFeed(hs2, admin2.AccessToken), newFeed(hs1, admin1.AccessToken)
	subscribe(localFeed)
	subscribe(remoteFeed, "hs1.test")
	for f := range repFeeds {
		id := fmt.Sprintf("!benchfeed%d:hs9.test", f)
		blend.SetFeed(id, 1, false)
		blend.LoadRules(id, repFeed(b, f))
	}
	b.Cleanup(func() {
		for f := range repFeeds {
			blend.RemoveFeed(fmt.Sprintf("!benchfeed%d:hs9.test", f))
		}
	})

	for _, c := range []struct {
		name  string
		s     *testserver.Server
		token string
		feed  string
	}{{"local", hs2, admin2.AccessToken, localFeed}, {"federated", hs1, admin1.AccessToken, remoteFeed}} {
		b.Run(c.name, func(b *testing.B) {
			var took, lag []time.Duration
			put := func(key string, content map[string]any) time.Time {
				path := "/_matrix/client/v3/rooms/" + url.PathEscape(c.feed) + "/state/m.policy.rule.user/" + url.PathEscape(key)
				if status, body := c.s.Do(b, http.MethodPut, path, c.token, content); status != http.StatusOK {
					b.Fatalf("put rule: %d %v", status, body)
				}
				return time.Now()
			}
			wait := func(entity string, want bool, start, sent time.Time) {
				for blend.Check(ctx, reputation.ActionEvents, reputation.KindUser, entity, "").Listed != want {
					if time.Since(start) > 30*time.Second {
						b.Fatalf("%s listed=%v not applied after 30 s", entity, want)
					}
					time.Sleep(100 * time.Microsecond)
				}
				took = append(took, time.Since(start))
				lag = append(lag, max(0, time.Since(sent)))
			}
			b.ResetTimer()
			for i := range b.N {
				entity := fmt.Sprintf("@target%d-%s:hs3.test", i, c.name)
				key := fmt.Sprintf("bench-%s-%d", c.name, i)
				start := time.Now()
				sent := put(key, map[string]any{"entity": entity, "recommendation": "m.ban", "reason": "bench"})
				wait(entity, true, start, sent)
				start = time.Now()
				sent = put(key, map[string]any{})
				wait(entity, false, start, sent)
			}
			b.StopTimer()
			b.ReportMetric(ms(percentile(took, 50)), "p50-ms")
			b.ReportMetric(ms(percentile(took, 99)), "p99-ms")
			b.ReportMetric(ms(percentile(took, 100)), "max-ms")
			b.ReportMetric(ms(percentile(lag, 99)), "after-answer-p99-ms")
			b.ReportMetric(ms(percentile(lag, 100)), "after-answer-max-ms")
		})
	}
}
