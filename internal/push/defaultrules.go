package push

import "maunium.net/go/mautrix/pushrules"

// The rule set cache (Service.rulesets) keeps a user's compiled rules
// once built, but the first event after start-up that reaches a big
// room's members builds every member's set at once: a join to a room of
// 10,000 local members cost 0.9-2.3 s of CPU on the resident server
// (docs/benchmarks.md, "Big-room join in 2 s"), nearly all of it in
// defaultRules -> evaluatorRules -> compileRules, which writes the
// thirty-odd server-default rules to JSON and reads them back twice per
// user. Most users never change their rules, and the default rules of
// two such users differ only by the user ID in two conditions
// (.m.rule.invite_for_me's state_key, .m.rule.is_user_mention's value):
// so they are built from the compiled default rules of nobody, built
// once, with only those conditions copied and filled in.

// defaultRulesFor is the compiled server-default rules of userID, the
// same as compiling defaultRules(userID). The rules without the user ID
// are shared between users: compiled rules are never changed once built.
func defaultRulesFor(userID string) *compiledRules {
	t := genericRules()
	return &compiledRules{
		override:    personalise(t.override, userID),
		content:     personalise(t.content, userID),
		postcontent: personalise(t.postcontent, userID),
		underride:   personalise(t.underride, userID),
		// The server defines no room or sender rules; only lookups use
		// these maps.
		room: t.room, sender: t.sender,
	}
}

// personalise is list with nobody's ID replaced by userID wherever a
// condition holds it.
func personalise(list []*compiledRule, userID string) []*compiledRule {
	out := make([]*compiledRule, len(list))
	for i, r := range list {
		out[i] = r
		if mentionsNobody(r) {
			out[i] = withUser(r, userID)
		}
	}
	return out
}

func mentionsNobody(r *compiledRule) bool {
	for _, c := range r.conds {
		if v, _ := c.Value.(string); c.Pattern == nobody || v == nobody {
			return true
		}
	}
	return false
}

// withUser is a copy of r with nobody's ID replaced by userID, its
// globs compiled again as compileRules does.
func withUser(r *compiledRule, userID string) *compiledRule {
	pr := *r.PushRule
	pr.Conditions = make([]*pushrules.PushCondition, len(r.PushRule.Conditions))
	out := &compiledRule{PushRule: &pr, content: r.content, conds: make([]compiledCond, len(r.conds))}
	for i, c := range r.PushRule.Conditions {
		cp := *c
		if cp.Pattern == nobody {
			cp.Pattern = userID
		}
		if v, ok := cp.Value.(string); ok && v == nobody {
			cp.Value = userID
		}
		pr.Conditions[i] = &cp
	}
	// compileRules makes one compiled condition per condition, in order.
	for i, c := range r.conds {
		out.conds[i] = compiledCond{PushCondition: pr.Conditions[i], glob: c.glob}
		if c.glob != nil && c.Pattern == nobody {
			out.conds[i].glob = compileGlob(userID)
		}
	}
	return out
}
