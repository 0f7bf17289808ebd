package push_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/pushrules"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestRulesFollowUpgrade: a user's enabled rules about a room (Element's
// mute: an override rule named after the room with a room_id condition;
// a room rule) are copied to its replacement when they join it, the
// upgrader included, as Synapse does; disabled ones and rules about
// other rooms are not. Their tags and m.direct entry follow as well.
func TestRulesFollowUpgrade(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice, bob := s.Register("alice", "pw-alice-1"), s.Register("bob", "pw-bob-1")
		old := publicRoom(t, alice, bob)
		other := publicRoom(t, alice)
		mute := func(c *mautrix.Client, room id.RoomID) {
			t.Helper()
			status, body := s.Do(t, http.MethodPut, rulesPath+"override/"+string(room), c.AccessToken, map[string]any{
				"actions":    []any{},
				"conditions": []any{map[string]any{"kind": "event_match", "key": "room_id", "pattern": string(room)}}})
			testserver.WantStatus(t, "mute", status, body, http.StatusOK)
		}
		for _, c := range []*mautrix.Client{alice, bob} {
			mute(c, old)
		}
		mute(bob, other)
		status, body := s.Do(t, http.MethodPut, rulesPath+"room/"+string(old), bob.AccessToken, map[string]any{"actions": []any{"notify"}})
		testserver.WantStatus(t, "room rule", status, body, http.StatusOK)
		status, body = s.Do(t, http.MethodPut, rulesPath+"underride/off", bob.AccessToken, map[string]any{"actions": []any{"notify"},
			"conditions": []any{map[string]any{"kind": "event_match", "key": "room_id", "pattern": string(old)}}})
		testserver.WantStatus(t, "underride rule", status, body, http.StatusOK)
		status, body = s.Do(t, http.MethodPut, rulesPath+"underride/off/enabled", bob.AccessToken, map[string]any{"enabled": false})
		testserver.WantStatus(t, "disable", status, body, http.StatusOK)

		if err := bob.AddTagWithCustomData(ctx, old, event.RoomTagFavourite, map[string]any{"order": 0.5}); err != nil {
			t.Fatal(err)
		}
		if err := bob.SetAccountData(ctx, event.AccountDataDirectChats.Type, map[string]any{string(alice.UserID): []string{string(old)}}); err != nil {
			t.Fatal(err)
		}
		var resp struct {
			ReplacementRoom id.RoomID `json:"replacement_room"`
		}
		if _, err := alice.MakeRequest(ctx, http.MethodPost, alice.BuildClientURL("v3", "rooms", old, "upgrade"), map[string]any{"new_version": "11"}, &resp); err != nil {
			t.Fatal(err)
		}
		repl := resp.ReplacementRoom
		join(t, repl, bob)

		copied := func(c *mautrix.Client) *pushrules.PushRuleset {
			t.Helper()
			deadline := time.Now().Add(10 * time.Second)
			for {
				rs, err := c.GetPushRules(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if rs.Override[1].RuleID == string(repl) || time.Now().After(deadline) {
					return rs
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		for _, c := range []*mautrix.Client{alice, bob} {
			rs := copied(c)
			r := rs.Override[1]
			if r.RuleID != string(repl) || !r.Enabled || len(r.Actions) != 0 || len(r.Conditions) != 1 || r.Conditions[0].Pattern != string(repl) {
				t.Fatalf("%s's override rules: %v, want a copy of the mute for %s first", c.UserID, ruleIDs(rs.Override), repl)
			}
		}
		rs := copied(bob)
		if got := ruleIDs(rs.Override); !equal(got[:4], []string{".m.rule.master", string(repl), string(other), string(old)}) {
			t.Fatalf("bob's override rules: %v", got)
		}
		if r := rs.Room.Map[string(repl)]; r == nil || len(rs.Room.Map) != 2 || len(r.Actions) != 1 || r.Actions[0].Action != pushrules.ActionNotify {
			t.Fatalf("bob's room rules: %v", rs.Room.Map)
		}
		if got := ruleIDs(rs.Underride); got[0] != "off" || got[1] == string(repl) {
			t.Fatalf("bob's underride rules: %v (the disabled rule is not copied)", got)
		}

		// Tags and the direct chat follow too.
		deadline := time.Now().Add(10 * time.Second)
		for {
			var tags event.TagEventContent
			if err := bob.GetTagsWithCustomData(ctx, repl, &tags); err != nil {
				t.Fatal(err)
			}
			direct := map[string][]string{}
			if err := bob.GetAccountData(ctx, event.AccountDataDirectChats.Type, &direct); err != nil {
				t.Fatal(err)
			}
			fav, ok := tags.Tags[event.RoomTagFavourite]
			if ok && fav.Order == "0.5" && equal(direct[string(alice.UserID)], []string{string(old), string(repl)}) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("bob's tags of the new room %+v, m.direct %v", tags.Tags, direct)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}
