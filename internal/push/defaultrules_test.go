package push

import (
	"encoding/json"
	"reflect"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/pushrules"
)

// slowDefaults is what ruleset built for a user with no stored rules
// before defaultRulesFor: the defaults written out for the user, read
// back and compiled.
func slowDefaults(t testing.TB, userID string) *compiledRules {
	rs, bad, err := evaluatorRules(parseUserRules(nil).merged(userID))
	if err != nil || len(bad) > 0 {
		t.Fatalf("%v %v", err, bad)
	}
	c, _ := compileRules(rs, DefaultLimits)
	return c
}

// Users whose IDs a glob reads specially (historical user IDs may hold
// any printable character but ':'), or JSON escapes.
var defaultRuleUsers = []string{"@alice:example.org", "@a*b?c:example.org", `@q"u\o:x`, "@[x]:y"}

func TestDefaultRulesForSameAsCompiled(t *testing.T) {
	for _, u := range defaultRuleUsers {
		want, got := slowDefaults(t, u), defaultRulesFor(u)
		lists := func(c *compiledRules) [][]*compiledRule {
			return [][]*compiledRule{c.override, c.content, c.postcontent, c.underride}
		}
		for li, wl := range lists(want) {
			gl := lists(got)[li]
			if len(wl) != len(gl) {
				t.Fatalf("%s: list %d: %d rules, want %d", u, li, len(gl), len(wl))
			}
			for i := range wl {
				w, _ := json.Marshal(wl[i].PushRule)
				g, _ := json.Marshal(gl[i].PushRule)
				if string(w) != string(g) || wl[i].Type != gl[i].Type {
					t.Fatalf("%s: rule %s:\n got %s\nwant %s", u, wl[i].RuleID, g, w)
				}
				if len(wl[i].conds) != len(gl[i].conds) {
					t.Fatalf("%s: rule %s: conditions", u, wl[i].RuleID)
				}
				for j := range wl[i].conds {
					if !reflect.DeepEqual(wl[i].conds[j].glob, gl[i].conds[j].glob) {
						t.Fatalf("%s: rule %s: condition %d glob %+v, want %+v", u, wl[i].RuleID, j, gl[i].conds[j].glob, wl[i].conds[j].glob)
					}
				}
			}
		}
		if len(got.room) != 0 || len(got.sender) != 0 || got.size != 0 {
			t.Fatalf("%s: room %v sender %v size %d", u, got.room, got.sender, got.size)
		}
	}
}

// stubRoom answers what the default rules ask of a room.
type stubRoom struct{ members int }

func (r stubRoom) GetOwnDisplayname() string                      { return "" }
func (r stubRoom) GetMemberCount() int                            { return r.members }
func (r stubRoom) GetPowerLevels() *event.PowerLevelsEventContent { return nil }
func (r stubRoom) GetEvent(id.EventID) *event.Event               { return nil }

// Each user's rules act on the events that name them, and only those:
// one user's copy must not leak into another's nor into the template.
func TestDefaultRulesForPerUser(t *testing.T) {
	mk := func(typ string, stateKey *string, content map[string]any) *event.Event {
		ev := &event.Event{ID: "$e", RoomID: "!r:x", Sender: "@s:x", Type: event.Type{Type: typ}, StateKey: stateKey}
		ev.Content.Raw = content
		return ev
	}
	all := append([]string{nobody}, defaultRuleUsers...)
	built := map[string]*compiledRules{}
	for _, u := range all {
		built[u] = defaultRulesFor(u)
	}
	for _, u := range all {
		for _, target := range all {
			k := target
			events := []*event.Event{
				mk("m.room.member", &k, map[string]any{"membership": "invite"}),
				mk("m.room.message", nil, map[string]any{"msgtype": "m.text", "body": "hi", "m.mentions": map[string]any{"user_ids": []any{target}}}),
			}
			for _, ev := range events {
				for _, members := range []int{2, 30} {
					room := stubRoom{members: members}
					got := built[u].GetActions(room, ev)
					want := slowDefaults(t, u).GetActions(room, ev)
					if !reflect.DeepEqual(got, want) {
						t.Fatalf("rules of %s, %s naming %s: %v, want %v", u, ev.Type.Type, target, got, want)
					}
					if (u == target) != got.Should().Notify && ev.Type.Type == "m.room.member" {
						t.Fatalf("rules of %s, invite of %s: notify %v", u, target, got.Should().Notify)
					}
					if (u == target) != got.Should().Highlight && ev.Type.Type == "m.room.message" {
						t.Fatalf("rules of %s, mention of %s: highlight %v", u, target, got.Should().Highlight)
					}
				}
			}
		}
	}
}

var _ pushrules.Room = stubRoom{}

// BenchmarkDefaultRuleset is the cost of one user's default rules, as
// built on the first event that reaches them.
func BenchmarkDefaultRuleset(b *testing.B) {
	b.Run("json", func(b *testing.B) {
		for range b.N {
			slowDefaults(b, "@user:example.org")
		}
	})
	b.Run("template", func(b *testing.B) {
		genericRules()
		b.ResetTimer()
		for range b.N {
			defaultRulesFor("@user:example.org")
		}
	})
}
