package push

import (
	"encoding/json"
	"slices"
	"strings"
)

// Kinds of push rules, in the order of priority they are evaluated: the
// spec's five, and MSC4306's postcontent between content and room (rules
// with conditions, as override ones; Synapse serves and evaluates it).
var kinds = []string{"override", "content", "postcontent", "room", "sender", "underride"}

func validKind(kind string) bool { return slices.Contains(kinds, kind) }

// Rule is a push rule in the client-server API's shape. Conditions is set
// (at least []) for override, postcontent and underride rules only, Pattern for
// content rules only.
type Rule struct {
	RuleID     string          `json:"rule_id"`
	Default    bool            `json:"default"`
	Enabled    bool            `json:"enabled"`
	Actions    json.RawMessage `json:"actions"`
	Conditions json.RawMessage `json:"conditions,omitempty"`
	Pattern    *string         `json:"pattern,omitempty"`
}

// Ruleset is a user's rules of every kind, each in priority order.
type Ruleset struct {
	Override []*Rule `json:"override"`
	Content  []*Rule `json:"content"`
	// Postcontent is MSC4306's kind (see kinds).
	Postcontent []*Rule `json:"postcontent"`
	Room        []*Rule `json:"room"`
	Sender      []*Rule `json:"sender"`
	Underride   []*Rule `json:"underride"`
}

// count is the number of rules of every kind.
func (rs *Ruleset) count() int {
	return len(rs.Override) + len(rs.Content) + len(rs.Postcontent) + len(rs.Room) + len(rs.Sender) + len(rs.Underride)
}

func (rs *Ruleset) kind(kind string) *[]*Rule {
	switch kind {
	case "override":
		return &rs.Override
	case "content":
		return &rs.Content
	case "postcontent":
		return &rs.Postcontent
	case "room":
		return &rs.Room
	case "sender":
		return &rs.Sender
	default:
		return &rs.Underride
	}
}

// userRules is what is stored for a user (as the m.push_rules account
// data entry): the rules they defined, and what they changed of the
// server-default ones. Server defaults are not stored, so that a server
// upgrade that changes them reaches every user.
type userRules struct {
	Rules Ruleset `json:"rules"`
	// Defaults is keyed by kind + "/" + rule ID.
	Defaults map[string]*defaultChange `json:"defaults,omitempty"`
}

type defaultChange struct {
	Enabled *bool           `json:"enabled,omitempty"`
	Actions json.RawMessage `json:"actions,omitempty"`
}

func parseUserRules(raw json.RawMessage) *userRules {
	u := &userRules{}
	if len(raw) > 0 {
		// Stored by this package; a damaged entry loses the user's
		// changes rather than their notifications.
		_ = json.Unmarshal(raw, u)
	}
	if u.Defaults == nil {
		u.Defaults = map[string]*defaultChange{}
	}
	return u
}

// merged is the user's full ruleset: .m.rule.master first, then the
// user's rules of each kind before the server-default ones (spec
// "Predefined Rules": server-default rules have lower priority than
// user-defined ones, except the master rule), with the user's changes to
// the defaults applied.
func (u *userRules) merged(userID string) *Ruleset {
	defs := defaultRules(userID)
	out := &Ruleset{}
	for _, kind := range kinds {
		d := *defs.kind(kind)
		mine := *u.Rules.kind(kind)
		list := make([]*Rule, 0, len(d)+len(mine))
		if kind == "override" && len(d) > 0 && d[0].RuleID == ruleMaster {
			list = append(list, u.applyDefault(kind, d[0]))
			d = d[1:]
		}
		list = append(list, mine...)
		for _, r := range d {
			list = append(list, u.applyDefault(kind, r))
		}
		*out.kind(kind) = list
	}
	return out
}

func (u *userRules) applyDefault(kind string, r *Rule) *Rule {
	c, ok := u.Defaults[kind+"/"+r.RuleID]
	if !ok {
		return r
	}
	cp := *r
	if c.Enabled != nil {
		cp.Enabled = *c.Enabled
	}
	if c.Actions != nil {
		cp.Actions = c.Actions
	}
	return &cp
}

func findRule(list []*Rule, ruleID string) int {
	return slices.IndexFunc(list, func(r *Rule) bool { return r.RuleID == ruleID })
}

// isDefaultID reports whether a rule ID is reserved for server-default
// rules (spec: they start with a dot).
func isDefaultID(ruleID string) bool { return strings.HasPrefix(ruleID, ".") }

const ruleMaster = ".m.rule.master"

// The event types of polls (MSC3381) as clients send them today.
const (
	pollStart    = "org.matrix.msc3381.poll.start"
	pollResponse = "org.matrix.msc3381.poll.response"
	pollEnd      = "org.matrix.msc3381.poll.end"
)

// defaultRules are the server-default rules of the spec's "Predefined
// Rules" (v1.17: the legacy body-matching mention rules are gone), for
// one user.
func defaultRules(userID string) *Ruleset {
	uid, _ := json.Marshal(userID)
	sound := `{"set_tweak":"sound","value":"default"}`
	highlight := `{"set_tweak":"highlight"}`
	rule := func(id, conditions, actions string) *Rule {
		return &Rule{RuleID: id, Default: true, Enabled: true, Conditions: json.RawMessage(conditions), Actions: json.RawMessage(actions)}
	}
	typeIs := func(t string) string { return `{"kind":"event_match","key":"type","pattern":"` + t + `"}` }
	master := rule(ruleMaster, `[]`, `[]`)
	master.Enabled = false
	return &Ruleset{
		Override: []*Rule{
			master,
			rule(".m.rule.suppress_notices", `[{"kind":"event_match","key":"content.msgtype","pattern":"m.notice"}]`, `[]`),
			rule(".m.rule.invite_for_me", `[`+typeIs("m.room.member")+`,{"kind":"event_match","key":"content.membership","pattern":"invite"},{"kind":"event_match","key":"state_key","pattern":`+string(uid)+`}]`,
				`["notify",`+sound+`]`),
			rule(".m.rule.member_event", `[`+typeIs("m.room.member")+`]`, `[]`),
			rule(".m.rule.is_user_mention", `[{"kind":"event_property_contains","key":"content.m\\.mentions.user_ids","value":`+string(uid)+`}]`,
				`["notify",`+sound+`,`+highlight+`]`),
			rule(".m.rule.is_room_mention", `[{"kind":"event_property_is","key":"content.m\\.mentions.room","value":true},{"kind":"sender_notification_permission","key":"room"}]`,
				`["notify",`+highlight+`]`),
			rule(".m.rule.tombstone", `[`+typeIs("m.room.tombstone")+`,{"kind":"event_match","key":"state_key","pattern":""}]`, `["notify",`+highlight+`]`),
			rule(".m.rule.reaction", `[`+typeIs("m.reaction")+`]`, `[]`),
			rule(".m.rule.room.server_acl", `[`+typeIs("m.room.server_acl")+`,{"kind":"event_match","key":"state_key","pattern":""}]`, `[]`),
			rule(".m.rule.suppress_edits", `[{"kind":"event_property_is","key":"content.m\\.relates_to.rel_type","value":"m.replace"}]`, `[]`),
			// Poll answers are not worth a notification (MSC3930, as
			// Synapse ships it).
			rule(".org.matrix.msc3930.rule.poll_response", `[`+typeIs(pollResponse)+`]`, `[]`),
		},
		Content: []*Rule{},
		// MSC4306: after mentions and keywords, a reply in a thread
		// notifies when the user follows the thread and not otherwise
		// (threadsubs.go).
		Postcontent: threadSubscriptionRules(rule, sound),
		Room:        []*Rule{},
		Sender:      []*Rule{},
		Underride: []*Rule{
			rule(".m.rule.call", `[`+typeIs("m.call.invite")+`]`, `["notify",{"set_tweak":"sound","value":"ring"}]`),
			rule(".m.rule.encrypted_room_one_to_one", `[{"kind":"room_member_count","is":"2"},`+typeIs("m.room.encrypted")+`]`, `["notify",`+sound+`]`),
			rule(".m.rule.room_one_to_one", `[{"kind":"room_member_count","is":"2"},`+typeIs("m.room.message")+`]`, `["notify",`+sound+`]`),
			rule(".m.rule.message", `[`+typeIs("m.room.message")+`]`, `["notify"]`),
			rule(".m.rule.encrypted", `[`+typeIs("m.room.encrypted")+`]`, `["notify"]`),
			// Polls notify as messages do (MSC3930). The rule IDs and event
			// types are the unstable ones Synapse ships and Element sends;
			// matrix-js-sdk reads these IDs as well as the .m.rule.poll_*
			// ones of the proposal.
			rule(".org.matrix.msc3930.rule.poll_start_one_to_one", `[{"kind":"room_member_count","is":"2"},`+typeIs(pollStart)+`]`, `["notify",`+sound+`]`),
			rule(".org.matrix.msc3930.rule.poll_start", `[`+typeIs(pollStart)+`]`, `["notify"]`),
			rule(".org.matrix.msc3930.rule.poll_end_one_to_one", `[{"kind":"room_member_count","is":"2"},`+typeIs(pollEnd)+`]`, `["notify",`+sound+`]`),
			rule(".org.matrix.msc3930.rule.poll_end", `[`+typeIs(pollEnd)+`]`, `["notify"]`),
		},
	}
}
