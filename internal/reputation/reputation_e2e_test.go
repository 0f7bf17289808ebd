package reputation_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/reputation"
	"github.com/myelin-chat/myelin/internal/testserver"
)

const repAPI = "/_myelin/admin/v1/reputation"

// policyRoom makes a public policy room with an alias on the client's
// server.
func policyRoom(t *testing.T, c *mautrix.Client, alias string) id.RoomID {
	t.Helper()
	resp, err := c.CreateRoom(context.Background(), &mautrix.ReqCreateRoom{Preset: "public_chat", RoomAliasName: alias, Name: "Ban list " + alias})
	if err != nil {
		t.Fatalf("create %s: %v", alias, err)
	}
	return resp.RoomID
}

func putRule(t *testing.T, c *mautrix.Client, room id.RoomID, typ, stateKey string, content map[string]any) {
	t.Helper()
	if _, err := c.SendStateEvent(context.Background(), room, event.Type{Type: typ, Class: event.StateEventType}, stateKey, content); err != nil {
		t.Fatalf("rule %s %q: %v", typ, stateKey, err)
	}
}

// draupnirKey is the state key Draupnir gives a rule: the padded base64
// SHA-256 of entity and recommendation together.
func draupnirKey(entity, recommendation string) string {
	h := sha256.Sum256([]byte(entity + recommendation))
	return base64.StdEncoding.EncodeToString(h[:])
}

func verdict(t *testing.T, s *testserver.Server, token, kind, entity, action string) map[string]any {
	t.Helper()
	q := url.Values{"kind": {kind}, "entity": {entity}, "action": {action}}
	status, body := s.Do(t, http.MethodGet, repAPI+"/check?"+q.Encode(), token, nil)
	testserver.WantStatus(t, "check "+entity, status, body, http.StatusOK)
	return body
}

// eventually polls until cond holds, for a rule change to travel from
// the feed's server and be applied (the issue asks for within a second;
// the deadline here only bounds a failing test).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func listed(t *testing.T, s *testserver.Server, token, kind, entity string) func() bool {
	return func() bool { return verdict(t, s, token, kind, entity, "events")["listed"] == true }
}

func unlisted(t *testing.T, s *testserver.Server, token, kind, entity string) func() bool {
	return func() bool { return verdict(t, s, token, kind, entity, "events")["listed"] == false }
}

// TestReputationFeeds: hs1 publishes policy rooms (spec, Mjolnir,
// Draupnir and Meowlnir formats; literal, glob and hashed entries); hs2
// subscribes through its configuration and through the admin API, and
// its verdicts follow rules added and removed on hs1, blend weights and
// allow-lists, survive a restart, and are logged when enforced.
func TestReputationFeeds(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, func(_ int, c *config.Config) { c.Registration.SharedSecret = "s3cret" }, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		a, b := net.Servers[0], net.Servers[1]
		curator := a.Register("curator", "pw")
		admin := b.RegisterAdmin("admin", "pw")
		tok := admin.AccessToken
		user := b.Register("user", "pw")

		// A non-admin is refused every route.
		for _, r := range []struct{ method, path string }{{"GET", repAPI + "/feeds"}, {"POST", repAPI + "/feeds"},
			{"DELETE", repAPI + "/feeds/%23x:hs1.test"}, {"GET", repAPI + "/decisions"}, {"GET", repAPI + "/check?kind=user&entity=@a:b"},
			{"GET", repAPI + "/feeds/%23x:hs1.test/stats"}} {
			status, body := b.Do(t, r.method, r.path, user.AccessToken, map[string]any{"room": "#x:hs1.test"})
			testserver.WantError(t, r.method+" "+r.path+" as a non-admin", status, body, http.StatusForbidden, "M_FORBIDDEN")
		}

		// Nobody may register the feeds' user.
		status, body := b.Do(t, http.MethodGet, "/_matrix/client/v3/register/available?username=myelin-reputation", "", nil)
		testserver.WantError(t, "register the feeds' user", status, body, http.StatusBadRequest, "M_EXCLUSIVE")

		list1 := policyRoom(t, curator, "list1")
		// Mjolnir's format: state key rule:<entity>.
		putRule(t, curator, list1, "m.policy.rule.user", "rule:@spam:hs3.test", map[string]any{"entity": "@spam:hs3.test", "reason": "spam", "recommendation": "m.ban"})
		// Draupnir's: a hashed state key, the entity in the clear.
		putRule(t, curator, list1, "m.policy.rule.user", draupnirKey("@draupnir:hs3.test", "m.ban"), map[string]any{"entity": "@draupnir:hs3.test", "reason": "", "recommendation": "m.ban"})
		// Meowlnir's and Draupnir's hashed takedown (MSC4205, MSC4204 unstable names).
		putRule(t, curator, list1, "m.policy.rule.user", draupnirKey(reputation.HashString("@hidden:hs3.test"), "org.matrix.msc4204.takedown"), map[string]any{
			"org.matrix.msc4205.hashes": map[string]string{"sha256": reputation.HashString("@hidden:hs3.test")}, "recommendation": "org.matrix.msc4204.takedown"})
		// The stable names.
		putRule(t, curator, list1, "m.policy.rule.user", "stable", map[string]any{"hashes": map[string]string{"sha256": reputation.HashString("@hidden2:hs3.test")}, "recommendation": "m.takedown"})
		putRule(t, curator, list1, "m.policy.rule.server", "glob", map[string]any{"entity": "*.evil.test", "recommendation": "m.ban", "reason": "spam farm"})
		putRule(t, curator, list1, "m.policy.rule.room", "room", map[string]any{"entity": "!bad:hs3.test", "recommendation": "m.ban"})
		putRule(t, curator, list1, "org.matrix.mjolnir.rule.user", "legacy", map[string]any{"entity": "@legacy:hs3.test", "recommendation": "org.matrix.mjolnir.ban"})
		putRule(t, curator, list1, "m.policy.rule.user", "unban", map[string]any{"entity": "@friend:hs3.test", "recommendation": "fi.mau.meowlnir.unban"})

		// hs2 subscribes to list1 in its configuration (the environment's format), from its next start.
		feeds, err := config.ParseReputationFeeds("#list1:hs1.test=1")
		if err != nil {
			t.Fatal(err)
		}
		b.Config.Reputation.Feeds = feeds
		b.Restart()
		eventually(t, "list1 loaded on hs2", listed(t, b, tok, "user", "@spam:hs3.test"))
		// Mjolnir's legacy event types are outside the m. namespace: a
		// partial-state join leaves them to the background resync, after
		// which the feed is reloaded.
		eventually(t, "list1's full state loaded on hs2", listed(t, b, tok, "user", "@legacy:hs3.test"))
		for _, c := range []struct {
			kind, entity     string
			listed, takedown bool
		}{
			{"user", "@draupnir:hs3.test", true, false}, {"user", "@hidden:hs3.test", true, true}, {"user", "@hidden2:hs3.test", true, true},
			{"server", "a.evil.test", true, false}, {"server", "evil.test", false, false}, {"room", "!bad:hs3.test", true, false},
			{"user", "@legacy:hs3.test", true, false}, {"user", "@friend:hs3.test", false, false}, {"user", "@nobody:hs3.test", false, false},
		} {
			v := verdict(t, b, tok, c.kind, c.entity, "joins")
			if v["listed"] != c.listed || v["takedown"] != c.takedown {
				t.Errorf("%s %s: %v, want listed %v takedown %v", c.kind, c.entity, v, c.listed, c.takedown)
			}
		}
		if v := verdict(t, b, tok, "server", "x.evil.test", "events"); v["reason"] != "spam farm" || fmt.Sprint(v["feeds"]) != fmt.Sprintf("[%s]", list1) {
			t.Errorf("glob verdict: %v", v)
		}

		// A rule added on hs1 takes effect on hs2, and its removal (empty content) undoes it.
		putRule(t, curator, list1, "m.policy.rule.user", "late", map[string]any{"entity": "@late:hs3.test", "recommendation": "m.ban"})
		eventually(t, "added rule", listed(t, b, tok, "user", "@late:hs3.test"))
		putRule(t, curator, list1, "m.policy.rule.user", "late", map[string]any{})
		eventually(t, "removed rule", unlisted(t, b, tok, "user", "@late:hs3.test"))

		// Blending: two feeds of weight 0.5, subscribed through the admin API, list together what neither lists alone.
		list2, list3 := policyRoom(t, curator, "list2"), policyRoom(t, curator, "list3")
		putRule(t, curator, list2, "m.policy.rule.user", "both", map[string]any{"entity": "@both:hs3.test", "recommendation": "m.ban"})
		putRule(t, curator, list2, "m.policy.rule.user", "half", map[string]any{"entity": "@half:hs3.test", "recommendation": "m.ban"})
		putRule(t, curator, list3, "m.policy.rule.user", "both", map[string]any{"entity": "@both:*", "recommendation": "m.ban"})
		// list2 by alias; list3 by its room ID (a version 12 room's, with no server in it) and a server to join through.
		for _, sub := range []map[string]any{{"room": "#list2:hs1.test", "weight": 0.5}, {"room": string(list3), "weight": 0.5, "via": []string{"hs1.test"}}} {
			status, body := b.Do(t, http.MethodPost, repAPI+"/feeds", tok, sub)
			testserver.WantStatus(t, fmt.Sprint("subscribe ", sub), status, body, http.StatusOK)
			if body["last_error"] != "" || body["rules"] != float64(map[bool]int{true: 2, false: 1}[sub["room"] == "#list2:hs1.test"]) {
				t.Fatalf("subscribe %v: %v", sub, body)
			}
		}
		if v := verdict(t, b, tok, "user", "@both:hs3.test", "events"); v["listed"] != true || v["score"] != 1.0 {
			t.Errorf("two half feeds: %v", v)
		}
		if v := verdict(t, b, tok, "user", "@half:hs3.test", "events"); v["listed"] != false || v["score"] != 0.5 {
			t.Errorf("one half feed: %v", v)
		}

		// An allow-list cancels list1's ban.
		allow := policyRoom(t, curator, "allow")
		putRule(t, curator, allow, "m.policy.rule.user", "spam", map[string]any{"entity": "@spam:hs3.test", "recommendation": "m.ban"})
		status, body = b.Do(t, http.MethodPost, repAPI+"/feeds", tok, map[string]any{"room": "#allow:hs1.test", "allow": true})
		testserver.WantStatus(t, "subscribe the allow-list", status, body, http.StatusOK)
		if v := verdict(t, b, tok, "user", "@spam:hs3.test", "events"); v["listed"] != false || v["score"] != 0.0 {
			t.Errorf("allow-listed: %v", v)
		}

		// Bad requests.
		for _, body := range []map[string]any{{}, {"room": "list"}, {"room": "#a:b", "weight": -1}, {"room": 5}, {"room": "!r", "via": []string{"not a server"}}} {
			status, resp := b.Do(t, http.MethodPost, repAPI+"/feeds", tok, body)
			if status != http.StatusBadRequest {
				t.Errorf("POST %v: %d %v", body, status, resp)
			}
		}
		status, body = b.Do(t, http.MethodDelete, repAPI+"/feeds/"+url.PathEscape("#list1:hs1.test"), tok, nil)
		testserver.WantError(t, "delete a configured feed", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		status, body = b.Do(t, http.MethodGet, repAPI+"/check?kind=nope&entity=x", tok, nil)
		testserver.WantError(t, "check of an unknown kind", status, body, http.StatusBadRequest, "M_INVALID_PARAM")

		// Subscriptions survive a restart; the rules are reloaded from the rooms' state.
		b.Restart()
		eventually(t, "feeds reloaded after restart", listed(t, b, tok, "user", "@both:hs3.test"))
		eventually(t, "allow-list reloaded after restart", unlisted(t, b, tok, "user", "@spam:hs3.test"))
		status, body = b.Do(t, http.MethodGet, repAPI+"/feeds", tok, nil)
		testserver.WantStatus(t, "list feeds", status, body, http.StatusOK)
		if body["total"] != 4.0 {
			t.Fatalf("feeds after restart: %v", body)
		}

		// An enforcement with a detail is logged, and counted per feed.
		v := reputation.CheckUser(ctx, b.Reputation(), reputation.ActionInvites, "@x:a.evil.test", "$invite")
		if !v.Listed {
			t.Fatalf("CheckUser: %+v", v)
		}
		b.Reputation().Check(ctx, reputation.ActionEvents, reputation.KindUser, "@half:hs3.test", "$unlisted") // not listed: not logged
		var decisions []any
		eventually(t, "decision logged", func() bool {
			status, body := b.Do(t, http.MethodGet, repAPI+"/decisions?feed="+url.QueryEscape(string(list1)), tok, nil)
			testserver.WantStatus(t, "decisions", status, body, http.StatusOK)
			decisions, _ = body["decisions"].([]any)
			return len(decisions) > 0
		})
		d := decisions[0].(map[string]any)
		if len(decisions) != 1 || d["action"] != "invites" || d["kind"] != "server" || d["entity"] != "a.evil.test" || d["detail"] != "$invite" {
			t.Errorf("decisions: %v", decisions)
		}
		status, body = b.Do(t, http.MethodGet, repAPI+"/decisions?action=events", tok, nil)
		if status != http.StatusOK || body["total"] != 0.0 || body["dropped_since_start"] != 0.0 {
			t.Errorf("decisions of another action: %d %v", status, body)
		}
		status, body = b.Do(t, http.MethodGet, repAPI+"/feeds/"+url.PathEscape("#list1:hs1.test")+"/stats?since_ts=0", tok, nil)
		if counts, _ := body["counts"].(map[string]any); status != http.StatusOK || counts["invites"] != 1.0 {
			t.Errorf("stats: %d %v", status, body)
		}

		// Unsubscribing list3 leaves @both at 0.5.
		status, body = b.Do(t, http.MethodDelete, repAPI+"/feeds/"+url.PathEscape(string(list3)), tok, nil)
		testserver.WantStatus(t, "unsubscribe", status, body, http.StatusOK)
		if v := verdict(t, b, tok, "user", "@both:hs3.test", "events"); v["listed"] != false {
			t.Errorf("after unsubscribing: %v", v)
		}
		status, body = b.Do(t, http.MethodDelete, repAPI+"/feeds/"+url.PathEscape(string(list3)), tok, nil)
		testserver.WantError(t, "unsubscribe twice", status, body, http.StatusNotFound, "M_NOT_FOUND")

		// The feeds' user kicked from list2: the feed shows it (and is joined again at the next retry); its rules stay.
		if _, err := curator.KickUser(ctx, list2, &mautrix.ReqKickUser{UserID: id.UserID("@myelin-reputation:hs2.test")}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "kick shown", func() bool {
			status, body := b.Do(t, http.MethodGet, repAPI+"/feeds", tok, nil)
			testserver.WantStatus(t, "list feeds", status, body, http.StatusOK)
			for _, f := range body["feeds"].([]any) {
				if f := f.(map[string]any); f["feed"] == "#list2:hs1.test" {
					return f["last_error"] != "" && f["rules"] == 2.0
				}
			}
			return false
		})

		// A feed that cannot be joined stays subscribed, with its error shown.
		status, body = b.Do(t, http.MethodPost, repAPI+"/feeds", tok, map[string]any{"room": "#missing:hs1.test"})
		testserver.WantStatus(t, "subscribe a missing room", status, body, http.StatusOK)
		if body["last_error"] == "" || body["room_id"] != "" || body["rules"] != 0.0 {
			t.Errorf("missing room: %v", body)
		}
		status, body = b.Do(t, http.MethodDelete, repAPI+"/feeds/"+url.PathEscape("#missing:hs1.test"), tok, nil)
		testserver.WantStatus(t, "unsubscribe the missing room", status, body, http.StatusOK)
	})
}
