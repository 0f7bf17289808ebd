package push

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.mau.fi/util/glob"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/pushrules"
)

// Users' push rules run for every event of every room they are in, on
// the one evaluator everyone shares, so what a user stores must not be
// able to cost unbounded CPU. mautrix's evaluator compiles each glob
// again for every event it tests, to a regular expression whose cost
// grows with the number of wildcards times the length of the value (a
// 64-wildcard event_match pattern took 0.17 s against a 64 kB body).
// Here every pattern is compiled once, when the user's ruleset is
// loaded (the ruleset cache keeps the compiled form), event_match globs
// to a matcher that scans the value once per wildcard-separated
// segment, and rules beyond the limits are left out of evaluation even
// when they were stored before the limits existed.

// Limits bound the push rules a user may store.
type Limits struct {
	// MaxRules bounds a user's own rules, all kinds together.
	MaxRules int
	// MaxConditions bounds the conditions of one rule.
	MaxConditions int
	// MaxPatternLength bounds, in bytes, a content rule's pattern and a
	// condition's key, pattern and string value.
	MaxPatternLength int
}

// DefaultLimits are generous for people (Element's per-room mute makes
// one rule per room) and cheap for the server.
var DefaultLimits = Limits{MaxRules: 500, MaxConditions: 16, MaxPatternLength: 256}

// compiledRules is a ruleset ready to evaluate: every kind's rules in
// priority order, each with its patterns compiled.
type compiledRules struct {
	override, content, postcontent, underride []*compiledRule
	room, sender                              map[string]*compiledRule
	// size is the number of the user's own rules: with the fixed
	// number of server-default ones, the ruleset's cost in the cache.
	size int
}

type compiledRule struct {
	*pushrules.PushRule
	conds   []compiledCond
	content *regexp.Regexp
}

type compiledCond struct {
	*pushrules.PushCondition
	glob *globMatcher // event_match conditions only
}

// compileRules compiles rs. A user rule over lim, or past the first
// lim.MaxRules, is left out (and counted in skipped): stored before the
// limits, it must not run. Server-default rules are always kept.
func compileRules(rs *evalRuleset, lim Limits) (out *compiledRules, skipped int) {
	out = &compiledRules{room: map[string]*compiledRule{}, sender: map[string]*compiledRule{}}
	users := 0
	add := func(r *pushrules.PushRule) *compiledRule {
		if !r.Default {
			if !withinLimits(r, lim) || users >= lim.MaxRules {
				skipped++
				return nil
			}
			users++
		}
		c := &compiledRule{PushRule: r}
		switch r.Type {
		case pushrules.OverrideRule, pushrules.UnderrideRule:
			for _, cond := range r.Conditions {
				cc := compiledCond{PushCondition: cond}
				if cond.Kind == pushrules.KindEventMatch {
					cc.glob = compileGlob(cond.Pattern)
				}
				c.conds = append(c.conds, cc)
			}
		case pushrules.ContentRule:
			// Content rules match whole words, case-insensitively (spec
			// "Push rules"), as mautrix's evaluator does it.
			var b strings.Builder
			b.WriteString(`(?i)\b`)
			_ = glob.ToRegexPattern(r.Pattern, &b)
			b.WriteString(`\b`)
			c.content, _ = regexp.Compile(b.String())
		}
		if !r.Default {
			out.size++
		}
		return c
	}
	for _, r := range rs.Override {
		if c := add(r); c != nil {
			out.override = append(out.override, c)
		}
	}
	for _, r := range rs.Content {
		if c := add(r); c != nil {
			out.content = append(out.content, c)
		}
	}
	for _, r := range rs.postcontent {
		if c := add(r); c != nil {
			out.postcontent = append(out.postcontent, c)
		}
	}
	for id, r := range rs.Room.Map {
		if c := add(r); c != nil {
			out.room[id] = c
		}
	}
	for id, r := range rs.Sender.Map {
		if c := add(r); c != nil {
			out.sender[id] = c
		}
	}
	for _, r := range rs.Underride {
		if c := add(r); c != nil {
			out.underride = append(out.underride, c)
		}
	}
	return out, skipped
}

// withinLimits checks one stored rule, as checkRuleLimits checks a new one.
func withinLimits(r *pushrules.PushRule, lim Limits) bool {
	if len(r.Pattern) > lim.MaxPatternLength || len(r.RuleID) > lim.MaxPatternLength || len(r.Conditions) > lim.MaxConditions {
		return false
	}
	for _, c := range r.Conditions {
		s, _ := c.Value.(string)
		if len(c.Key) > lim.MaxPatternLength || len(c.Pattern) > lim.MaxPatternLength || len(s) > lim.MaxPatternLength {
			return false
		}
	}
	return true
}

// GetActions is pushrules.PushRuleset.GetActions over the compiled rules.
func (rs *compiledRules) GetActions(room pushrules.Room, evt *event.Event) pushrules.PushActionArray {
	for _, list := range [][]*compiledRule{rs.override, rs.content, rs.postcontent} {
		for _, r := range list {
			if r.match(room, evt) {
				return r.Actions
			}
		}
	}
	if r := rs.room[evt.RoomID.String()]; r != nil && r.match(room, evt) {
		return r.Actions
	}
	if r := rs.sender[evt.Sender.String()]; r != nil && r.match(room, evt) {
		return r.Actions
	}
	for _, r := range rs.underride {
		if r.match(room, evt) {
			return r.Actions
		}
	}
	return pushrules.DefaultPushActions
}

func (r *compiledRule) match(room pushrules.Room, evt *event.Event) bool {
	if !r.Enabled {
		return false
	}
	switch r.RuleID {
	case ".m.rule.contains_display_name", ".m.rule.contains_user_name", ".m.rule.roomnotif":
		// Legacy mention rules yield to m.mentions (spec "Push rules",
		// as mautrix's evaluator does).
		if _, ok := evt.Content.Raw["m.mentions"]; ok {
			return false
		}
	}
	switch r.Type {
	case pushrules.OverrideRule, pushrules.UnderrideRule:
		for _, c := range r.conds {
			if !c.match(room, evt) {
				return false
			}
		}
		return true
	case pushrules.ContentRule:
		body, ok := evt.Content.Raw["body"].(string)
		return ok && r.content != nil && r.content.MatchString(body)
	case pushrules.RoomRule:
		return r.RuleID == evt.RoomID.String()
	case pushrules.SenderRule:
		return r.RuleID == evt.Sender.String()
	}
	return false
}

func (c compiledCond) match(room pushrules.Room, evt *event.Event) bool {
	if c.Kind == kindThreadSubscription {
		return matchThreadSubscription(c.PushCondition, room, evt)
	}
	if c.glob == nil {
		return c.PushCondition.Match(room, evt)
	}
	v, ok := conditionValue(c.Key, evt)
	return ok && c.glob.match(v)
}

// conditionValue is the value an event_match key names, as mautrix's
// evaluator finds it: type, sender, room_id, state_key, or a dotted
// path into the content (dots escaped with \, MSC3873), stringified.
func conditionValue(key string, evt *event.Event) (string, bool) {
	top, sub, _ := strings.Cut(key, ".")
	switch top {
	case "type":
		return evt.Type.Type, true
	case "sender":
		return evt.Sender.String(), true
	case "room_id":
		return evt.RoomID.String(), true
	case "state_key":
		if evt.StateKey == nil {
			return "", false
		}
		return *evt.StateKey, true
	case "content":
		v, ok := contentValue(evt.Content.Raw, splitEscaped(sub))
		if !ok {
			return "", false
		}
		return stringify(v), true
	}
	return "", false
}

func splitEscaped(s string) []string {
	var parts []string
	var cur []byte
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '.':
			parts = append(parts, string(cur))
			cur = cur[:0]
		case s[i] == '\\' && i+1 < len(s):
			i++
			cur = append(cur, s[i])
		default:
			cur = append(cur, s[i])
		}
	}
	return append(parts, string(cur))
}

// contentValue follows path into data; a part not found is joined with
// the next by a dot (content.m.relates_to finds "m.relates_to"), for the
// keys written before MSC3873's escaping, as mautrix does.
func contentValue(data map[string]any, path []string) (any, bool) {
	for len(path) > 0 {
		v, ok := data[path[0]]
		if len(path) == 1 {
			return v, ok
		}
		if m, isMap := v.(map[string]any); ok && isMap {
			if got, found := contentValue(m, path[1:]); found {
				return got, true
			}
		}
		path = append([]string{path[0] + "." + path[1]}, path[2:]...)
	}
	return nil, false
}

// stringify is MSC3862's value of a non-string field, as mautrix's.
func stringify(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case nil:
		return "null"
	case float64:
		// JSON numbers decode as floats; Matrix allows only integers.
		return strconv.FormatInt(int64(t), 10)
	}
	return fmt.Sprint(v)
}

// globMatcher matches a Matrix glob (spec appendix "Glob-style
// matching": * any run of characters, ? exactly one) case-insensitively.
// Any character includes a newline, as in mautrix's simple forms and
// Synapse (mautrix's regular expressions alone stopped at one).
// Between stars, each segment is found at its leftmost place after the
// previous one, which is where a match of the whole glob can put it: no
// backtracking, one scan of the value per segment.
type globMatcher struct {
	segs       []string // lowercased, split at stars
	start, end bool     // anchored at the value's start, end
}

// compileGlob compiles pattern as mautrix's evaluator reads it: a
// pattern without wildcards matches anywhere in the value.
func compileGlob(pattern string) *globMatcher {
	p := strings.ToLower(glob.Simplify(pattern))
	if !strings.ContainsAny(p, "*?") {
		p = "*" + p + "*"
	}
	g := &globMatcher{segs: strings.Split(p, "*"), start: !strings.HasPrefix(p, "*"), end: !strings.HasSuffix(p, "*")}
	return g
}

func (g *globMatcher) match(value string) bool {
	s := strings.ToLower(value)
	segs := g.segs
	if len(segs) == 1 {
		end, ok := segAt(s, 0, segs[0])
		return ok && end == len(s)
	}
	pos, limit := 0, len(s)
	if g.start {
		end, ok := segAt(s, 0, segs[0])
		if !ok {
			return false
		}
		pos = end
	}
	if g.end {
		last := segs[len(segs)-1]
		from, ok := lastSegStart(s, last)
		if !ok || from < pos {
			return false
		}
		if _, ok := segAt(s, from, last); !ok {
			return false
		}
		limit = from
	}
	for _, seg := range segs[1 : len(segs)-1] {
		end, ok := findSeg(s[:limit], pos, seg)
		if !ok {
			return false
		}
		pos = end
	}
	return true
}

// segAt matches seg (literal runes and ?) at byte offset i of s and
// returns where the match ends.
func segAt(s string, i int, seg string) (int, bool) {
	for _, pr := range seg {
		if i >= len(s) {
			return 0, false
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if pr != '?' && pr != r {
			return 0, false
		}
		i += n
	}
	return i, true
}

// findSeg finds seg's leftmost match in s at or after pos.
func findSeg(s string, pos int, seg string) (int, bool) {
	if !strings.Contains(seg, "?") {
		i := strings.Index(s[pos:], seg)
		if i < 0 {
			return 0, false
		}
		return pos + i + len(seg), true
	}
	for i := pos; i <= len(s); {
		if end, ok := segAt(s, i, seg); ok {
			return end, true
		}
		if i == len(s) {
			break
		}
		_, n := utf8.DecodeRuneInString(s[i:])
		i += n
	}
	return 0, false
}

// lastSegStart is where seg must start to end s: as many characters
// before the end as seg has.
func lastSegStart(s, seg string) (int, bool) {
	i := len(s)
	for range utf8.RuneCountInString(seg) {
		if i == 0 {
			return 0, false
		}
		_, n := utf8.DecodeLastRuneInString(s[:i])
		i -= n
	}
	return i, true
}
