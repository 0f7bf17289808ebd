package reputation

import (
	"context"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
)

// Actions lists every enforcement point.
var Actions = []Action{ActionEvents, ActionInvites, ActionJoins, ActionDirectory, ActionUserDirectory, ActionMedia, ActionRegistration}

// Kinds lists every kind of entity.
var Kinds = []Kind{KindUser, KindRoom, KindServer}

// DefaultThreshold is the score an entity needs to be listed for an
// action: one feed of weight 1.0 is enough.
const DefaultThreshold = 1.0

// Policy is how the blend answers per action and kind: its threshold
// (DefaultThreshold when not set) and whether the action is on.
type Policy struct {
	Thresholds map[Action]map[Kind]float64
	Disabled   map[Action]map[Kind]bool
}

func (p Policy) threshold(a Action, k Kind) (float64, bool) {
	if p.Disabled[a][k] {
		return 0, false
	}
	if t, ok := p.Thresholds[a][k]; ok {
		return t, true
	}
	return DefaultThreshold, true
}

// Decision is one enforcement recorded in the decision log: what was
// done (action), to whom (kind, entity), on whose word (feeds, score)
// and about what (detail: an event ID, a media ID, a localpart; never
// message content).
type Decision struct {
	TS     int64 // ms since the epoch
	Action Action
	Kind   Kind
	Entity string
	Feeds  []string
	Score  float64
	Detail string
}

// kindIndex is one feed's rules about one kind of entity.
type kindIndex struct {
	literal map[string][]*Rule
	hashed  map[[32]byte][]*Rule
	globs   globIndex
}

func (x *kindIndex) add(r *Rule) {
	if r.Entity != "" {
		if r.Glob() {
			x.globs.add(&globRule{g: compileGlob(r.Entity), rule: r})
		} else {
			if x.literal == nil {
				x.literal = map[string][]*Rule{}
			}
			x.literal[r.Entity] = append(x.literal[r.Entity], r)
		}
	}
	if r.HasHash {
		if x.hashed == nil {
			x.hashed = map[[32]byte][]*Rule{}
		}
		x.hashed[r.SHA256] = append(x.hashed[r.SHA256], r)
	}
}

func without(list []*Rule, r *Rule) []*Rule {
	for i, x := range list {
		if x == r {
			return append(list[:i:i], list[i+1:]...)
		}
	}
	return list
}

func (x *kindIndex) remove(r *Rule) {
	if r.Entity != "" {
		if r.Glob() {
			x.globs.remove(r)
		} else if rest := without(x.literal[r.Entity], r); len(rest) > 0 {
			x.literal[r.Entity] = rest
		} else {
			delete(x.literal, r.Entity)
		}
	}
	if r.HasHash {
		if rest := without(x.hashed[r.SHA256], r); len(rest) > 0 {
			x.hashed[r.SHA256] = rest
		} else {
			delete(x.hashed, r.SHA256)
		}
	}
}

// match returns the feed's rule listing the entity (a takedown over a
// ban), or nil.
func (x *kindIndex) match(entity string, hash *[32]byte) *Rule {
	var found *Rule
	consider := func(r *Rule) bool {
		if found == nil || (r.Takedown && !found.Takedown) {
			found = r
		}
		return !found.Takedown
	}
	for _, r := range x.literal[entity] {
		if !consider(r) {
			return found
		}
	}
	if hash != nil {
		for _, r := range x.hashed[*hash] {
			if !consider(r) {
				return found
			}
		}
	}
	x.globs.each(entity, consider)
	return found
}

// ruleKey is a rule's place in its room: its state event type and key.
type ruleKey struct{ typ, stateKey string }

// feed is one subscribed policy room's rules and its standing.
type feed struct {
	roomID string
	weight float64
	allow  bool
	rules  map[ruleKey]*Rule
	kinds  [3]kindIndex
	hashes [3]int // rules with a hash, per kind
}

func kindIndexOf(k Kind) int {
	switch k {
	case KindUser:
		return 0
	case KindRoom:
		return 1
	case KindServer:
		return 2
	}
	return -1
}

func newFeed(roomID string, weight float64, allow bool) *feed {
	return &feed{roomID: roomID, weight: weight, allow: allow, rules: map[ruleKey]*Rule{}}
}

// set replaces the rule at key (nil content or a non-rule removes it).
func (f *feed) set(key ruleKey, content []byte) {
	if old := f.rules[key]; old != nil {
		i := kindIndexOf(old.Kind)
		f.kinds[i].remove(old)
		if old.HasHash {
			f.hashes[i]--
		}
		delete(f.rules, key)
	}
	r, ok := ParseRule(key.typ, content)
	if !ok {
		return
	}
	i := kindIndexOf(r.Kind)
	f.rules[key] = &r
	f.kinds[i].add(&r)
	if r.HasHash {
		f.hashes[i]++
	}
}

// Blender is the Enforcer over the subscribed feeds: it holds every
// feed's rules indexed for Check (a map lookup for literal and hashed
// entities, an index of compiled globs) and blends their weights. Rule
// changes update the index in place under a write lock held only for
// the in-memory update.
type Blender struct {
	mu     sync.RWMutex
	feeds  map[string]*feed
	order  []*feed // feeds sorted by room ID: Check's answer lists them so
	policy Policy
	// record receives each decision to log; it must not block.
	record func(Decision)
	now    func() time.Time
	// version counts the changes to feeds and rules (under mu), so that
	// the republished feed is rewritten only after one.
	version uint64
}

// NewBlender makes an empty blend with a policy; record (may be nil)
// receives the decisions Check makes with a detail, and must not block.
func NewBlender(p Policy, record func(Decision)) *Blender {
	return &Blender{feeds: map[string]*feed{}, policy: p, record: record, now: time.Now}
}

// SetFeed adds a feed (with no rules yet) or changes its weight and
// allow flag.
func (b *Blender) SetFeed(roomID string, weight float64, allow bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.version++
	if f := b.feeds[roomID]; f != nil {
		f.weight, f.allow = weight, allow
		return
	}
	b.feeds[roomID] = newFeed(roomID, weight, allow)
	b.reorder()
}

// RemoveFeed forgets a feed and its rules.
func (b *Blender) RemoveFeed(roomID string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.version++
	delete(b.feeds, roomID)
	b.reorder()
}

func (b *Blender) reorder() {
	b.order = b.order[:0]
	for _, f := range b.feeds {
		b.order = append(b.order, f)
	}
	slices.SortFunc(b.order, func(x, y *feed) int { return strings.Compare(x.roomID, y.roomID) })
}

// StateRule is one piece of a feed room's state: a rule event's type,
// state key and content (empty when the rule was removed).
type StateRule struct {
	Type, StateKey string
	Content        []byte
}

// SetRule applies one rule change of a subscribed feed; changes to
// rooms that are not feeds are ignored.
func (b *Blender) SetRule(roomID string, r StateRule) {
	if _, ok := RuleTypes[r.Type]; !ok {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if f := b.feeds[roomID]; f != nil {
		b.version++
		f.set(ruleKey{r.Type, r.StateKey}, r.Content)
	}
}

// LoadRules replaces a feed's rules with a room's whole current state
// of rule events. The index is built before the lock is taken, so that
// checks go on meanwhile.
func (b *Blender) LoadRules(roomID string, rules []StateRule) {
	b.mu.RLock()
	old := b.feeds[roomID]
	b.mu.RUnlock()
	if old == nil {
		return
	}
	f := feedOf(roomID, rules)
	b.mu.Lock()
	defer b.mu.Unlock()
	if cur := b.feeds[roomID]; cur != nil {
		b.version++
		f.weight, f.allow = cur.weight, cur.allow
		b.feeds[roomID] = f
		b.reorder()
	}
}

// feedOf builds a feed of a room's policy rules (weight and allow flag
// are the subscription's, set by the caller).
func feedOf(roomID string, rules []StateRule) *feed {
	f := newFeed(roomID, 0, false)
	for _, r := range rules {
		if _, ok := RuleTypes[r.Type]; ok {
			f.set(ruleKey{r.Type, r.StateKey}, r.Content)
		}
	}
	return f
}

// Succeed replaces a feed by its successor (its room upgraded) with the
// successor's rules, keeping its weight and allow flag, in one step:
// no check sees both feeds (which would count the weight twice) nor
// neither. It reports false when oldRoom is not a feed.
func (b *Blender) Succeed(oldRoom, newRoom string, rules []StateRule) bool {
	f := feedOf(newRoom, rules)
	b.mu.Lock()
	defer b.mu.Unlock()
	old := b.feeds[oldRoom]
	if old == nil {
		return false
	}
	b.version++
	f.weight, f.allow = old.weight, old.allow
	delete(b.feeds, oldRoom)
	b.feeds[newRoom] = f
	b.reorder()
	return true
}

// RuleCount is how many rules a feed holds (0 for no such feed).
func (b *Blender) RuleCount(roomID string) int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if f := b.feeds[roomID]; f != nil {
		return len(f.rules)
	}
	return 0
}

// Check implements Enforcer.
func (b *Blender) Check(_ context.Context, action Action, kind Kind, entity string, detail string) Verdict {
	v := b.blend(kind, entity, func(f *feed) (float64, bool, bool) { return f.weight, f.allow, true })
	threshold, on := b.policy.threshold(action, kind)
	v.Listed = on && reaches(v.Score, threshold)
	if v.Listed && detail != "" && b.record != nil {
		b.record(Decision{TS: b.now().UnixMilli(), Action: action, Kind: kind, Entity: entity,
			Feeds: slices.Clone(v.Feeds), Score: v.Score, Detail: detail})
	}
	return v
}

// reaches reports whether a positive score reaches a threshold, with a
// small tolerance, so that weights like 0.1 that add up to the
// threshold in decimal reach it in binary too.
func reaches(score, threshold float64) bool {
	return score > 0 && score >= threshold-1e-9
}

// blend sums, over the feeds that weigh returns ok for, the weights of
// those listing the entity (allow-lists counting against): the one
// blending of Check and of users' own filters (CheckWeighted). Listed
// is left for the caller's threshold.
func (b *Blender) blend(kind Kind, entity string, weigh func(*feed) (weight float64, allow, ok bool)) Verdict {
	ki := kindIndexOf(kind)
	if ki < 0 || entity == "" {
		return Verdict{}
	}
	cand := normalise(kind, entity)
	var v Verdict
	best := math.Inf(-1)
	var hash *[32]byte
	b.mu.RLock()
	defer b.mu.RUnlock()
	for _, f := range b.order {
		weight, allow, ok := weigh(f)
		if !ok {
			continue
		}
		if f.hashes[ki] > 0 && hash == nil {
			h := HashEntity(entity)
			hash = &h
		}
		r := f.kinds[ki].match(cand, hash)
		if r == nil {
			continue
		}
		v.Feeds = append(v.Feeds, f.roomID)
		if allow {
			v.Score -= weight
			continue
		}
		v.Score += weight
		v.Takedown = v.Takedown || r.Takedown
		if weight > best {
			best, v.Reason = weight, r.Reason
		}
	}
	return v
}

// Weight is one feed's standing in a blend of someone's own choosing.
type Weight struct {
	Weight float64
	Allow  bool
}

// CheckWeighted blends only the feeds in weights, with those weights
// instead of the feeds' own, against threshold: a user's own filter
// (UserFilters) over the feeds the server follows for its users. Nothing
// is recorded.
func (b *Blender) CheckWeighted(kind Kind, entity string, weights map[string]Weight, threshold float64) Verdict {
	v := b.blend(kind, entity, func(f *feed) (float64, bool, bool) {
		w, ok := weights[f.roomID]
		return w.Weight, w.Allow, ok
	})
	v.Listed = reaches(v.Score, threshold)
	return v
}

// Follows reports whether a room is a subscribed feed.
func (b *Blender) Follows(roomID string) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	_, ok := b.feeds[roomID]
	return ok
}

// Version changes whenever a feed or rule does.
func (b *Blender) Version() uint64 {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.version
}
