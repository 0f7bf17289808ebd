package push

import (
	"encoding/json"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// fuzzRoom is a room the evaluator may ask anything about.
type fuzzRoom struct{}

func (fuzzRoom) GetOwnDisplayname() string { return "Alice" }
func (fuzzRoom) GetMemberCount() int       { return 3 }
func (fuzzRoom) GetPowerLevels() *event.PowerLevelsEventContent {
	return &event.PowerLevelsEventContent{}
}
func (fuzzRoom) GetEvent(id.EventID) *event.Event { return nil }
func (fuzzRoom) GetOwnUserID() id.UserID          { return "@alice:a.test" }

// FuzzPutRule: the kind and body of PUT /pushrules/global/{kind}/{ruleId}.
// A rule the server accepts is one its evaluator can load: a rule that
// is stored but cannot be turned into the evaluator's form would fail
// the user's push rules for every event of every room they share.
func FuzzPutRule(f *testing.F) {
	for _, s := range [][2]string{
		{"override", `{"actions":["notify"],"conditions":[{"kind":"event_match","key":"type","pattern":"m.room.*"}]}`},
		{"content", `{"actions":["notify",{"set_tweak":"sound","value":"default"}],"pattern":"cake*lie"}`},
		{"underride", `{"actions":[{"set_tweak":"highlight"}],"conditions":[{"kind":"contains_display_name"}]}`},
		{"room", `{"actions":["dont_notify"]}`},
		{"postcontent", `{"actions":[],"conditions":[{"kind":"event_match","key":"content.body","pattern":"*lie*"}]}`},
		{"sender", `{"actions":[]}`},
		{"override", `{"actions":["notify"],"conditions":[{"kind":"event_match","key":1}]}`},
		{"override", `{"actions":["notify"],"conditions":[{"kind":"room_member_count","is":"<=x"}]}`},
		{"override", `{"actions":["notify"],"conditions":[{"kind":"sender_notification_permission","key":[]}]}`},
		{"override", `{"actions":["notify"],"conditions":[{"kind":"event_property_is","key":"content.x","value":{"a":1}}]}`},
		{"override", `{"actions":[{"set_tweak":"highlight","value":"yes"}]}`},
		{"override", `{"actions":[{"set_tweak":"sound"}]}`},
		{"override", `{"actions":[{"set_tweak":"x","value":null}],"conditions":null}`},
		{"content", `{"actions":["notify"],"pattern":"\u0000"}`},
		{"override", `{"actions":"notify"}`},
	} {
		f.Add(s[0], []byte(s[1]))
	}
	msg := &event.Event{Type: event.EventMessage, Sender: "@bob:a.test", RoomID: "!r:a.test", ID: "$e",
		Content: event.Content{Parsed: &event.MessageEventContent{MsgType: event.MsgText, Body: "cake is a lie, Alice"}}}
	_ = msg.Content.ParseRaw(event.EventMessage)
	f.Fuzz(func(t *testing.T, kind string, raw []byte) {
		if !validKind(kind) {
			return
		}
		var body RuleBody
		if json.Unmarshal(raw, &body) != nil {
			return
		}
		rule, err := buildRule(kind, "fuzz", body, DefaultLimits)
		if err != nil {
			return
		}
		u := parseUserRules(nil)
		*u.Rules.kind(kind) = append(*u.Rules.kind(kind), rule)
		rs, bad, err := evaluatorRules(u.merged("@alice:a.test"))
		if err != nil || len(bad) > 0 {
			t.Fatalf("accepted %s rule %s, which the evaluator cannot load: %v %v", kind, raw, err, bad)
		}
		compiled, _ := compileRules(rs, DefaultLimits)
		_ = compiled.GetActions(fuzzRoom{}, msg)
		// Stored and read back, the rule is the same.
		stored, err := json.Marshal(u)
		if err != nil {
			t.Fatal(err)
		}
		if _, bad, err := evaluatorRules(parseUserRules(stored).merged("@alice:a.test")); err != nil || len(bad) > 0 {
			t.Fatalf("stored rules do not load again: %v %v", err, bad)
		}
	})
}
