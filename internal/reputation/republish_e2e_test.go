package reputation_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/testdb"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// republishState is the republished feed's rule state on its server:
// content per state key.
func republishState(t *testing.T, s *testserver.Server, alias string) map[rooms.StateKey]string {
	t.Helper()
	ctx := context.Background()
	status, body := s.Do(t, http.MethodGet, "/_matrix/client/v3/directory/room/"+url.PathEscape(alias), "", nil)
	testserver.WantStatus(t, "resolve "+alias, status, body, http.StatusOK)
	roomID, _ := body["room_id"].(string)
	state, err := s.Engine().CurrentState(ctx, roomID)
	if err != nil {
		t.Fatal(err)
	}
	var keys []rooms.StateKey
	for k := range state {
		if strings.HasPrefix(k.Type, "m.policy.rule.") {
			keys = append(keys, k)
		}
	}
	evs, err := s.Engine().StateEvents(ctx, state, keys...)
	if err != nil {
		t.Fatal(err)
	}
	out := map[rooms.StateKey]string{}
	for k, ev := range evs {
		if c := string(ev.Content()); c != "{}" {
			out[k] = c
		}
	}
	return out
}

// TestReputationRepublish: hs2 follows hs1's feed and republishes its
// blend as #blend:hs2.test; hs1 subscribes to that and its check lists
// what hs2's blend lists, follows a rule's removal, and the modes write
// what they say: plain entities, plain with hashes (both), or hashes
// only, naming no entity and leaving globs out (hashed).
func TestReputationRepublish(t *testing.T) {
	for _, mode := range []string{"plain", "hashed", "both"} {
		t.Run(mode, func(t *testing.T) {
			net := testserver.StartNetwork(t, testdb.Engines()[0], 2, func(i int, c *config.Config) {
				enfConfig(c)
				if i == 1 {
					c.Reputation.Republish = config.ReputationRepublish{Alias: "#blend:hs2.test", Mode: mode}
				}
			})
			hs1, hs2 := net.Servers[0], net.Servers[1]
			admin1, admin2 := hs1.RegisterAdmin("admin", "password1234"), hs2.RegisterAdmin("admin", "password1234")
			feed := enfFeed(t, admin1)
			enfRule(t, admin1, feed, "user", "carol", "@carol:hs3.test", "m.ban", "spam")
			enfHashedRule(t, admin1, feed, "user", "hidden", "@hidden:hs3.test", "m.ban", "secret")
			enfRule(t, admin1, feed, "user", "glob", "@spam*:hs3.test", "m.ban", "spam bots")
			enfSubscribe(t, hs2, admin2, feed, "hs1.test")
			enfWaitListed(t, hs2, admin2, "events", "user", "@spam1:hs3.test", true)

			enfSubscribe(t, hs1, admin1, "#blend:hs2.test")
			enfWaitListed(t, hs1, admin1, "events", "user", "@carol:hs3.test", true)
			enfWaitListed(t, hs1, admin1, "events", "user", "@hidden:hs3.test", true)
			state := republishState(t, hs2, "#blend:hs2.test")
			if len(state) == 0 {
				t.Fatal("the republished feed holds no rules")
			}
			for k, c := range state {
				plain := strings.Contains(c, "@") || strings.Contains(k.StateKey, "@")
				if mode == "hashed" && plain {
					t.Errorf("the hashed republished feed names an entity: %s %q %s", k.Type, k.StateKey, c)
				}
			}
			if mode != "hashed" {
				enfWaitListed(t, hs1, admin1, "events", "user", "@spam1:hs3.test", true)
				c := state[rooms.StateKey{Type: "m.policy.rule.user", StateKey: "rule:@carol:hs3.test"}]
				if !strings.Contains(c, `"entity":"@carol:hs3.test"`) || strings.Contains(c, `"hashes"`) != (mode == "both") {
					t.Errorf("carol's %s rule: %q (state %v)", mode, c, state)
				}
			} else {
				// Globs cannot be hashed: left out.
				enfWaitListed(t, hs1, admin1, "events", "user", "@spam1:hs3.test", false)
			}
			// A rule removed from hs1's feed leaves the blend, then the
			// republished feed, then hs1's check.
			enfRule(t, admin1, feed, "user", "carol", "", "", "")
			enfWaitListed(t, hs1, admin1, "events", "user", "@carol:hs3.test", false)
			enfWaitListed(t, hs1, admin1, "events", "user", "@hidden:hs3.test", true)
		})
	}
}
