package reputation

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/myelin-chat/myelin/internal/store"
)

// SubscriptionsType is the global account data type in which a user
// subscribes to feeds for their own view (issue 16 item 7):
//
//	{"feeds": [{"room": "!id or #alias", "weight": 1.0, "allow": false}], "threshold": 1.0}
//
// weight defaults to 1.0 and threshold to DefaultThreshold.
const SubscriptionsType = "org.myelin.reputation.subscriptions"

// maxUserFeeds bounds the feeds one user's filter follows.
const maxUserFeeds = 50

// UserFeed is one feed of a user's own filter.
type UserFeed struct {
	Room   string
	Weight float64
	Allow  bool
	Via    []string // servers to join a room ID through
}

// UserSubscriptions is a user's own filter as their account data sets it.
type UserSubscriptions struct {
	Feeds     []UserFeed
	Threshold float64
}

// ParseUserSubscriptions reads a user's filter from account data the
// client wrote: bad entries (not a room ID or alias, a weight that is
// not a number of at least 0) are left out, and content that is not an
// object subscribes to nothing, as a bad m.ignored_user_list ignores
// nobody.
func ParseUserSubscriptions(raw []byte) UserSubscriptions {
	var c struct {
		Feeds     []json.RawMessage `json:"feeds"`
		Threshold *float64          `json:"threshold"`
	}
	out := UserSubscriptions{Threshold: DefaultThreshold}
	if json.Unmarshal(raw, &c) != nil {
		return out
	}
	if c.Threshold != nil && *c.Threshold > 0 && !math.IsInf(*c.Threshold, 0) {
		out.Threshold = *c.Threshold
	}
	seen := map[string]bool{}
	for _, f := range c.Feeds {
		var e struct {
			Room   string   `json:"room"`
			Weight *float64 `json:"weight"`
			Allow  bool     `json:"allow"`
			Via    []any    `json:"via"`
		}
		if json.Unmarshal(f, &e) != nil || checkFeedName(e.Room) != nil || seen[e.Room] {
			continue
		}
		w := 1.0
		if e.Weight != nil {
			w = *e.Weight
		}
		if w < 0 || math.IsInf(w, 0) {
			continue
		}
		seen[e.Room] = true
		var via []string
		for _, v := range e.Via {
			if s, ok := v.(string); ok && s != "" && len(s) <= 255 && len(via) < 10 {
				via = append(via, s)
			}
		}
		out.Feeds = append(out.Feeds, UserFeed{Room: e.Room, Weight: w, Allow: e.Allow, Via: via})
		if len(out.Feeds) == maxUserFeeds {
			break
		}
	}
	return out
}

// userFilter is one user's filter with its feeds resolved to rooms.
type userFilter struct {
	subs      UserSubscriptions
	weights   map[string]Weight // by feed room ID
	threshold float64
}

// UserFilters are the users' own filters: one Blender holds the rules of
// every feed some user subscribed to (followed by the Service with the
// server's feeds' user, but enforced only for the users who subscribed),
// and each user's blend weighs the feeds they chose with their weights
// (Blender.CheckWeighted). It also counts, per user, feed and day, what
// each filter hid (the extent report), without any message content.
type UserFilters struct {
	blend *Blender
	now   func() time.Time

	mu     sync.RWMutex
	users  map[string]*userFilter
	rooms  map[string]string // feed name → room ID, once resolved
	errors map[string]string // feed name → why it is not followed

	extentMu sync.Mutex
	extent   map[string]map[string]map[string]*extentDay // user → day → feed room ID
	// pending is what Hid counted since the last write (userextent.go).
	pending map[extentKey]*store.UserExtent
	// extentStore keeps the counts across restarts (nil: memory only).
	extentStore ExtentStore
	log         *slog.Logger
}

// UserFiltersOption configures the users' filters.
type UserFiltersOption func(*UserFilters)

// WithExtentStore keeps the extent counts in s, written in batches by
// Run, so that a restart keeps them.
func WithExtentStore(s ExtentStore, log *slog.Logger) UserFiltersOption {
	return func(u *UserFilters) { u.extentStore, u.log = s, log }
}

// NewUserFilters makes the users' filters, empty until the Service
// reads them.
func NewUserFilters(opts ...UserFiltersOption) *UserFilters {
	u := &UserFilters{blend: NewBlender(Policy{}, nil), now: time.Now, users: map[string]*userFilter{},
		rooms: map[string]string{}, errors: map[string]string{}, extent: map[string]map[string]map[string]*extentDay{},
		pending: map[extentKey]*store.UserExtent{}}
	for _, o := range opts {
		o(u)
	}
	return u
}

// set replaces a user's filter (no feeds: none), and reports whether
// it changed.
func (u *UserFilters) set(userID string, subs UserSubscriptions) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	old := u.users[userID]
	if len(subs.Feeds) == 0 {
		delete(u.users, userID)
		return old != nil
	}
	if old != nil && reflect.DeepEqual(old.subs, subs) {
		return false
	}
	f := &userFilter{subs: subs, threshold: subs.Threshold}
	u.users[userID] = f
	u.reweigh(f)
	return true
}

// reweigh maps a filter's feeds to the rooms resolved so far.
func (u *UserFilters) reweigh(f *userFilter) {
	f.weights = map[string]Weight{}
	for _, feed := range f.subs.Feeds {
		if roomID := u.roomOf(feed.Room); roomID != "" {
			f.weights[roomID] = Weight{Weight: feed.Weight, Allow: feed.Allow}
		}
	}
}

// roomOf is the room a feed name is followed in: an alias's room once
// resolved, a room ID's own, or for either its replacement once the
// room was upgraded (upgrades.go).
func (u *UserFilters) roomOf(name string) string {
	if roomID, ok := u.rooms[name]; ok {
		return roomID
	}
	if strings.HasPrefix(name, "!") {
		return name
	}
	return ""
}

// resolved notes the room a feed name is followed in (or why it is not).
func (u *UserFilters) resolved(name, roomID, errMsg string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if roomID != "" && !strings.HasPrefix(name, "!") {
		u.rooms[name] = roomID
	}
	if errMsg == "" {
		delete(u.errors, name)
	} else {
		u.errors[name] = errMsg
	}
	for _, f := range u.users {
		u.reweigh(f)
	}
}

// wanted are the feed names some user subscribed to, with the servers
// their subscribers named to join them through.
func (u *UserFilters) wanted() map[string][]string {
	u.mu.RLock()
	defer u.mu.RUnlock()
	out := map[string][]string{}
	for _, f := range u.users {
		for _, feed := range f.subs.Feeds {
			out[feed.Room] = append(out[feed.Room], feed.Via...)
		}
	}
	return out
}

// filterOf is a user's filter, or nil.
func (u *UserFilters) filterOf(userID string) *userFilter {
	if u == nil {
		return nil
	}
	u.mu.RLock()
	defer u.mu.RUnlock()
	return u.users[userID]
}

// check blends a user's feeds for an entity.
func (u *UserFilters) check(f *userFilter, kind Kind, entity string) Verdict {
	return u.blend.CheckWeighted(kind, entity, f.weights, f.threshold)
}

// HidesSender returns the feeds of userID's own filter that hide events
// (and invites) of sender: the user rule and the rule of the sender's
// server, the stronger verdict, as the server's CheckUser. nil when the
// user's filter does not list the sender; a user is never hidden from
// themselves.
func (u *UserFilters) HidesSender(_ context.Context, userID, sender string) []string {
	f := u.filterOf(userID)
	if f == nil || sender == userID || sender == "" {
		return nil
	}
	v := u.check(f, KindUser, sender)
	if s := idServer(sender); s != "" {
		if sv := u.check(f, KindServer, s); stronger(sv, v) {
			v = sv
		}
	}
	if !v.Listed {
		return nil
	}
	return v.Feeds
}

// HidesInvite returns the feeds of userID's own filter that hide an
// invite from sender to roomID (the sender, their server, or the room).
func (u *UserFilters) HidesInvite(ctx context.Context, userID, sender, roomID string) []string {
	if feeds := u.HidesSender(ctx, userID, sender); feeds != nil {
		return feeds
	}
	f := u.filterOf(userID)
	if f == nil {
		return nil
	}
	if v := u.check(f, KindRoom, roomID); v.Listed {
		return v.Feeds
	}
	return nil
}

// HidesRoomFor reports whether userID's own filter lists a room: it is
// left out of their room directory, hierarchies and room summaries
// (directory.UserRoomScreen). Listings ask on every request, so nothing
// is counted here.
func (u *UserFilters) HidesRoomFor(_ context.Context, userID, roomID string) bool {
	f := u.filterOf(userID)
	return f != nil && u.check(f, KindRoom, roomID).Listed
}

// extentDay is what one feed hid from one user on one day.
type extentDay struct {
	events, invites       int64
	users, rooms, servers map[string]bool
}

// maxExtentEntities bounds the distinct entities counted per feed and
// day (the count stops growing there).
const maxExtentEntities = 10000

// extentDays is how many days of counts are kept.
const extentDays = 31

// Hid counts, for the extent report, an event (invite: an invite) that
// feeds hid from userID, sent by sender in roomID. It is called once per
// event and user, when the event arrives (the push path), not on reads.
func (u *UserFilters) Hid(userID string, feeds []string, invite bool, sender, roomID string) {
	if u == nil || len(feeds) == 0 {
		return
	}
	day := u.now().UTC().Format("2006-01-02")
	u.extentMu.Lock()
	defer u.extentMu.Unlock()
	for _, feed := range feeds {
		x := u.extentDayOf(userID, day, feed)
		p := u.pendingOf(userID, day, feed)
		if invite {
			x.invites++
			p.Invites++
		} else {
			x.events++
			p.Events++
		}
		x.add(p, KindUser, sender)
		x.add(p, KindRoom, roomID)
		x.add(p, KindServer, idServer(sender))
	}
}

// extentDayOf is what feed hid from userID on day, made when new (and
// the days past extentDays forgotten). extentMu held.
func (u *UserFilters) extentDayOf(userID, day, feed string) *extentDay {
	days := u.extent[userID]
	if days == nil {
		days = map[string]map[string]*extentDay{}
		u.extent[userID] = days
	}
	if days[day] == nil {
		days[day] = map[string]*extentDay{}
		for d := range days {
			if d < u.cutoff() {
				delete(days, d)
			}
		}
	}
	x := days[day][feed]
	if x == nil {
		x = &extentDay{users: map[string]bool{}, rooms: map[string]bool{}, servers: map[string]bool{}}
		days[day][feed] = x
	}
	return x
}

// cutoff is the first day not kept.
func (u *UserFilters) cutoff() string {
	return u.now().UTC().AddDate(0, 0, -extentDays).Format("2006-01-02")
}

// add counts an entity of a kind (up to maxExtentEntities), noting a new
// one in p (nil: none) for the next write.
func (x *extentDay) add(p *store.UserExtent, kind Kind, entity string) {
	set := x.users
	switch kind {
	case KindRoom:
		set = x.rooms
	case KindServer:
		set = x.servers
	}
	if entity == "" || set[entity] || len(set) >= maxExtentEntities {
		return
	}
	set[entity] = true
	if p != nil {
		p.Entities = append(p.Entities, store.UserExtentEntity{Kind: string(kind), Entity: entity})
	}
}

// Extent is what one feed hid over a period.
type Extent struct {
	Feed    string  `json:"feed"`    // the name the user subscribed with
	RoomID  string  `json:"room_id"` // "" until resolved
	Weight  float64 `json:"weight"`
	Allow   bool    `json:"allow"`
	Rules   int     `json:"rules"`
	Error   string  `json:"error,omitempty"`
	Events  int64   `json:"events"`
	Invites int64   `json:"invites"`
	Users   int64   `json:"users"`
	Rooms   int64   `json:"rooms"`
	Servers int64   `json:"servers"`
}

// UserExtent reports, per feed of the user's filter, what it hid from
// the user since sinceTS (to the day: counts are kept per UTC day).
func (u *UserFilters) UserExtent(userID string, sinceTS int64) []Extent {
	f := u.filterOf(userID)
	if f == nil {
		return []Extent{}
	}
	u.mu.RLock()
	out := make([]Extent, 0, len(f.subs.Feeds))
	for _, feed := range f.subs.Feeds {
		roomID := u.roomOf(feed.Room)
		out = append(out, Extent{Feed: feed.Room, RoomID: roomID, Weight: feed.Weight, Allow: feed.Allow,
			Rules: u.blend.RuleCount(roomID), Error: u.errors[feed.Room]})
	}
	u.mu.RUnlock()
	since := time.UnixMilli(sinceTS).UTC().Format("2006-01-02")
	u.extentMu.Lock()
	defer u.extentMu.Unlock()
	for i := range out {
		users, rooms, servers := map[string]bool{}, map[string]bool{}, map[string]bool{}
		for day, feeds := range u.extent[userID] {
			x := feeds[out[i].RoomID]
			if day < since || x == nil {
				continue
			}
			out[i].Events += x.events
			out[i].Invites += x.invites
			for set, from := range map[*map[string]bool]map[string]bool{&users: x.users, &rooms: x.rooms, &servers: x.servers} {
				for e := range from {
					(*set)[e] = true
				}
			}
		}
		out[i].Users, out[i].Rooms, out[i].Servers = int64(len(users)), int64(len(rooms)), int64(len(servers))
	}
	return out
}

// Threshold is a user's filter's threshold (DefaultThreshold for none).
func (u *UserFilters) Threshold(userID string) float64 {
	if f := u.filterOf(userID); f != nil {
		return f.threshold
	}
	return DefaultThreshold
}

// followedRooms are the rooms the users' blend follows.
func (u *UserFilters) followedRooms() []string {
	u.blend.mu.RLock()
	defer u.blend.mu.RUnlock()
	out := make([]string, 0, len(u.blend.feeds))
	for id := range u.blend.feeds {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}
