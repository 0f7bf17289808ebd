package push

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"maunium.net/go/mautrix/pushrules"

	"github.com/myelin-chat/myelin/internal/accountdata"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// RuleBody is the body of PUT /pushrules/global/{kind}/{ruleId}.
type RuleBody struct {
	Actions    json.RawMessage `json:"actions"`
	Conditions json.RawMessage `json:"conditions"`
	Pattern    *string         `json:"pattern"`
}

// Rules is the user's full ruleset.
func (s *Service) Rules(ctx context.Context, userID string) (*Ruleset, error) {
	raw, err := s.accountData.Stored(ctx, userID, "", accountdata.TypePushRules)
	if err != nil {
		return nil, err
	}
	return parseUserRules(raw).merged(userID), nil
}

// renderRules is m.push_rules as clients see it, for account data.
func (s *Service) renderRules(_ context.Context, userID string, stored json.RawMessage) (json.RawMessage, error) {
	return json.Marshal(map[string]any{"global": parseUserRules(stored).merged(userID)})
}

// Rule finds one rule; M_NOT_FOUND if the user has no such rule.
func (s *Service) Rule(ctx context.Context, userID, kind, ruleID string) (*Rule, error) {
	rs, err := s.Rules(ctx, userID)
	if err != nil {
		return nil, err
	}
	if !validKind(kind) {
		return nil, errUnknownKind(kind)
	}
	list := *rs.kind(kind)
	if i := findRule(list, ruleID); i >= 0 {
		return list[i], nil
	}
	return nil, errNotFound()
}

// tooLong refuses a push rule field over the limits (see Limits), with
// the 400 M_TOO_LARGE Synapse answers for a field over its length.
func tooLong(field string, max int) error {
	return tooMany("The %s is too long: at most %d bytes", field, max)
}

func tooMany(format string, args ...any) error {
	return mxerr.TooLarge(format, args...).WithStatus(http.StatusBadRequest)
}

// overAccountLimit refuses a new rule or pusher over the number a user
// may have: an account-scoped limit, M_USER_LIMIT_EXCEEDED since spec
// v1.18 (it was M_TOO_LARGE before; the status stays 400). info_uri
// points at the spec's description of what is limited, the one page
// every server's users can read.
func overAccountLimit(infoURI, format string, args ...any) error {
	return mxerr.UserLimitExceeded(http.StatusBadRequest, infoURI, format, args...)
}

// Pages about the limited resources, for info_uri.
const (
	pushRulesInfoURI = "https://spec.matrix.org/v1.18/client-server-api/#push-rules"
	pushersInfoURI   = "https://spec.matrix.org/v1.18/client-server-api/#post_matrixclientv3pushersset"
)

func errNotFound() error { return mxerr.NotFound("The push rule was not found.") }

// errRelative is the spec's answer to a before/after naming no rule of
// the user's (server-default rules included: nothing goes between them).
func errRelative(ruleID string) error {
	return &mxerr.Error{Status: http.StatusBadRequest, Code: "M_UNKNOWN", Message: "before/after rule not found: " + ruleID}
}

func errUnknownKind(kind string) error {
	return mxerr.InvalidParam("Unknown push rule kind %q", kind)
}

// update changes the user's stored rules and drops the cached ruleset.
// The change is an m.push_rules account data change, which /sync
// delivers.
func (s *Service) update(ctx context.Context, userID string, fn func(u *userRules) error) error {
	err := s.accountData.Update(ctx, userID, "", accountdata.TypePushRules, func(old json.RawMessage) (json.RawMessage, error) {
		u := parseUserRules(old)
		if err := fn(u); err != nil {
			return nil, err
		}
		return json.Marshal(u)
	})
	s.dropRuleset(userID)
	return err
}

// dropRuleset forgets a user's cached rules once a change of them is
// stored: under rulesMu, so that a load that read the old rules has
// stored them before and is dropped too.
func (s *Service) dropRuleset(userID string) {
	s.rulesMu.Lock()
	s.rulesets.Remove(userID)
	s.rulesMu.Unlock()
}

// PutRule creates or updates a user-defined rule (spec "PUT
// /pushrules/global/{kind}/{ruleId}"): a new rule goes first among the
// user's rules of its kind unless before/after place it; an updated one
// keeps its place unless they move it.
func (s *Service) PutRule(ctx context.Context, userID, kind, ruleID, before, after string, body RuleBody) error {
	if !validKind(kind) {
		return errUnknownKind(kind)
	}
	if isDefaultID(ruleID) {
		return mxerr.InvalidParam("Rule IDs starting with '.' are reserved for server-default rules")
	}
	if ruleID == "" || strings.ContainsAny(ruleID, `/\`) {
		return mxerr.InvalidParam("Rule IDs may not be empty or contain '/' or '\\'")
	}
	lim := s.opts.Limits
	if len(ruleID) > lim.MaxPatternLength {
		return tooLong("rule_id", lim.MaxPatternLength)
	}
	rule, err := buildRule(kind, ruleID, body, lim)
	if err != nil {
		return err
	}
	return s.update(ctx, userID, func(u *userRules) error {
		list := u.Rules.kind(kind)
		at := findRule(*list, ruleID)
		if at < 0 && u.Rules.count() >= lim.MaxRules {
			return overAccountLimit(pushRulesInfoURI, "Too many push rules: at most %d of your own", lim.MaxRules)
		}
		if at >= 0 {
			rule.Enabled = (*list)[at].Enabled
			if before == "" && after == "" {
				(*list)[at] = rule
				return nil
			}
			*list = slices.Delete(*list, at, at+1)
		}
		pos := 0
		switch {
		case before != "":
			if pos = findRule(*list, before); pos < 0 {
				return errRelative(before)
			}
		case after != "":
			if pos = findRule(*list, after); pos < 0 {
				return errRelative(after)
			}
			pos++
		}
		*list = slices.Insert(*list, pos, rule)
		return nil
	})
}

// buildRule checks a PUT body for a kind.
func buildRule(kind, ruleID string, body RuleBody, lim Limits) (*Rule, error) {
	if body.Actions == nil {
		return nil, mxerr.MissingParam("Missing 'actions'")
	}
	if err := checkActions(body.Actions, lim); err != nil {
		return nil, err
	}
	r := &Rule{RuleID: ruleID, Enabled: true, Actions: body.Actions}
	switch kind {
	case "override", "postcontent", "underride":
		if body.Conditions == nil {
			r.Conditions = json.RawMessage("[]")
		} else if err := checkConditions(body.Conditions, lim); err != nil {
			return nil, err
		} else {
			r.Conditions = body.Conditions
		}
	case "content":
		if body.Pattern == nil {
			return nil, mxerr.MissingParam("Missing 'pattern' for a content rule")
		}
		if len(*body.Pattern) > lim.MaxPatternLength {
			return nil, tooLong("pattern", lim.MaxPatternLength)
		}
		r.Pattern = body.Pattern
	}
	return r, nil
}

// checkActions accepts what Synapse does: "notify" (and the deprecated
// "dont_notify" and "coalesce") and set_tweak objects; a sound must name
// a string and highlight's value be a boolean, which the evaluator
// relies on.
func checkActions(raw json.RawMessage, lim Limits) error {
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil || list == nil {
		return mxerr.InvalidParam("'actions' must be an array")
	}
	// Actions go to push gateways with every notification: a rule's
	// are bounded as its conditions are.
	if len(list) > lim.MaxConditions {
		return tooMany("Too many actions: at most %d", lim.MaxConditions)
	}
	for _, a := range list {
		if len(a) > lim.MaxPatternLength {
			return tooLong("action", lim.MaxPatternLength)
		}
		var name string
		if json.Unmarshal(a, &name) == nil {
			if name != "notify" && name != "dont_notify" && name != "coalesce" {
				return mxerr.InvalidParam("Unrecognised action %q", name)
			}
			continue
		}
		var tweak struct {
			SetTweak *string         `json:"set_tweak"`
			Value    json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(a, &tweak); err != nil || tweak.SetTweak == nil {
			return mxerr.InvalidParam("Unrecognised action %s", a)
		}
		var s string
		var b bool
		switch {
		case *tweak.SetTweak == "sound" && (json.Unmarshal(tweak.Value, &s) != nil || tweak.Value[0] != '"'):
			return mxerr.InvalidParam("The sound tweak's value must be a string")
		case *tweak.SetTweak == "highlight" && tweak.Value != nil && json.Unmarshal(tweak.Value, &b) != nil:
			return mxerr.InvalidParam("The highlight tweak's value must be a boolean")
		}
	}
	return nil
}

func checkConditions(raw json.RawMessage, lim Limits) error {
	var list []struct {
		Kind    *string         `json:"kind"`
		Key     string          `json:"key"`
		Pattern string          `json:"pattern"`
		Value   json.RawMessage `json:"value"`
		Is      string          `json:"is"`
	}
	if err := json.Unmarshal(raw, &list); err != nil || list == nil {
		return mxerr.InvalidParam("'conditions' must be an array of objects")
	}
	if len(list) > lim.MaxConditions {
		return tooMany("Too many conditions: at most %d", lim.MaxConditions)
	}
	for _, c := range list {
		if c.Kind == nil {
			return mxerr.InvalidParam("Every condition needs a 'kind'")
		}
		for field, v := range map[string]int{"kind": len(*c.Kind), "key": len(c.Key), "pattern": len(c.Pattern), "value": len(c.Value), "is": len(c.Is)} {
			if v > lim.MaxPatternLength {
				return tooLong("condition "+field, lim.MaxPatternLength)
			}
		}
	}
	// The evaluator must be able to load what is stored: a condition it
	// cannot decode (a number as key) would fail the user's whole ruleset,
	// for every event of every room they are in.
	var typed []pushrules.PushCondition
	if err := json.Unmarshal(raw, &typed); err != nil {
		return mxerr.InvalidParam("Invalid condition: %v", err)
	}
	return nil
}

// DeleteRule removes a user-defined rule; server-default rules cannot be
// removed (only disabled).
func (s *Service) DeleteRule(ctx context.Context, userID, kind, ruleID string) error {
	if !validKind(kind) {
		return errUnknownKind(kind)
	}
	if isDefaultID(ruleID) {
		if _, err := s.Rule(ctx, userID, kind, ruleID); err != nil {
			return err
		}
		return mxerr.InvalidParam("Server-default rules cannot be deleted")
	}
	return s.update(ctx, userID, func(u *userRules) error {
		list := u.Rules.kind(kind)
		at := findRule(*list, ruleID)
		if at < 0 {
			return errNotFound()
		}
		*list = slices.Delete(*list, at, at+1)
		return nil
	})
}

// SetEnabled enables or disables a rule, user-defined or server-default.
func (s *Service) SetEnabled(ctx context.Context, userID, kind, ruleID string, enabled bool) error {
	return s.change(ctx, userID, kind, ruleID, func(r *Rule, d *defaultChange) {
		if r != nil {
			r.Enabled = enabled
		} else {
			d.Enabled = &enabled
		}
	})
}

// SetActions replaces a rule's actions.
func (s *Service) SetActions(ctx context.Context, userID, kind, ruleID string, actions json.RawMessage) error {
	if actions == nil {
		return mxerr.MissingParam("Missing 'actions'")
	}
	if err := checkActions(actions, s.opts.Limits); err != nil {
		return err
	}
	return s.change(ctx, userID, kind, ruleID, func(r *Rule, d *defaultChange) {
		if r != nil {
			r.Actions = actions
		} else {
			d.Actions = actions
		}
	})
}

// change applies fn to a user-defined rule, or to the user's changes of
// a server-default one; M_NOT_FOUND if neither exists.
func (s *Service) change(ctx context.Context, userID, kind, ruleID string, fn func(*Rule, *defaultChange)) error {
	if !validKind(kind) {
		return errUnknownKind(kind)
	}
	if isDefaultID(ruleID) && findRule(*defaultRules(userID).kind(kind), ruleID) < 0 {
		return errNotFound()
	}
	return s.update(ctx, userID, func(u *userRules) error {
		if isDefaultID(ruleID) {
			key := kind + "/" + ruleID
			d, ok := u.Defaults[key]
			if !ok {
				d = &defaultChange{}
				u.Defaults[key] = d
			}
			fn(nil, d)
			return nil
		}
		list := *u.Rules.kind(kind)
		at := findRule(list, ruleID)
		if at < 0 {
			return errNotFound()
		}
		fn(list[at], nil)
		return nil
	})
}
