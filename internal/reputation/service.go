package reputation

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/membership"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// Store keeps the subscriptions and the decision log.
type Store interface {
	LogStore
	ReputationFeeds(ctx context.Context) ([]store.ReputationFeed, error)
	PutReputationFeed(ctx context.Context, f store.ReputationFeed) error
	SetReputationFeedRoom(ctx context.Context, feed, roomID, lastError string) error
	DeleteReputationFeed(ctx context.Context, feed string) error
	ReputationDecisions(ctx context.Context, q store.ReputationDecisionQuery) ([]store.ReputationDecision, int64, error)
	ReputationFeedStats(ctx context.Context, feed string, sinceTS int64) (map[string]int64, error)
	ReputationFeedEntities(ctx context.Context, feed string, sinceTS int64, actions []string) (map[string]int64, error)
	GlobalAccountDataOfType(ctx context.Context, typ string) ([]store.UserAccountData, error)
	GetAccountData(ctx context.Context, userID, roomID, typ string) (string, error)
}

// Rooms is what the service reads of rooms: the current rule state of
// a feed, and whether the system user is in it.
type Rooms interface {
	CurrentState(ctx context.Context, roomID string) (rooms.StateMap, error)
	StateEvents(ctx context.Context, state rooms.StateMap, keys ...rooms.StateKey) (map[rooms.StateKey]*rooms.Event, error)
	MembershipOf(ctx context.Context, roomID, userID string) (string, error)
}

// Members joins and leaves feeds' rooms, through their servers when no
// one here is in them (membership.Service).
type Members interface {
	Join(ctx context.Context, userID, roomID string, via []string, body membership.Content) error
	Leave(ctx context.Context, userID, roomID, reason string) (remote bool, err error)
}

// Aliases resolves a feed named by alias: Local for this server's
// aliases, Remote (nil without federation) for other servers'.
type Aliases struct {
	Local interface {
		Resolve(ctx context.Context, alias string) (string, string, error)
	}
	Remote interface {
		ResolveAlias(ctx context.Context, alias string) (string, []string, error)
	}
}

// Options build the service.
type Options struct {
	ServerName string
	Config     config.Reputation
	Blender    *Blender
	Store      Store
	Rooms      Rooms
	Members    Members
	Aliases    Aliases
	Log        *slog.Logger
	// Bus carries new events; the service follows rule changes on it.
	Bus bus.Bus
	// DecisionLog, when set, is the log the Blender records into; the
	// admin API shows how many decisions it dropped.
	DecisionLog *Log
	// Users, when set, are the users' own filters, whose feeds the
	// service follows too (userfeeds.go).
	Users *UserFilters
	// Publisher creates and writes the republished feed
	// (Config.Republish; republish.go).
	Publisher Publisher
}

// Source of a subscription.
const (
	SourceConfig = "config"
	SourceAPI    = "api"
)

// retryEvery is how often feeds that could not be joined or loaded are
// tried again.
const retryEvery = time.Minute

// Service follows the subscribed feeds: it joins each feed's room with
// the server-owned user, loads its rules into the Blender, and applies
// every rule change as the event arrives. One goroutine (Run) does all
// of this in order, so that a feed's full load and the changes that
// follow it never cross.
type Service struct {
	o Options

	mu      sync.Mutex
	changed map[string]map[ruleKey]bool // rule changes to re-read, per feed room
	// stale are the feed rooms the feeds' user was removed from, to be
	// joined again (Run's goroutine only).
	stale map[string]bool
	jobs  []func(context.Context)
	wake  chan struct{}
	// republished is the republished feed's room, once known (Run's
	// goroutine only).
	republished string
	// republishedAt is the blend's version the republished feed was
	// last made equal to.
	republishedAt uint64
	// upgrades are the feed rooms upgraded to a replacement not yet
	// followed, by old room (Run's goroutine only; upgrades.go).
	upgrades map[string]upgrade
	// retired are the feed rooms replaced by their upgrade since start.
	retired map[string]bool
}

// New makes the service and subscribes it to the bus; Run follows the feeds.
func New(o Options) *Service {
	s := &Service{o: o, changed: map[string]map[ruleKey]bool{}, stale: map[string]bool{}, upgrades: map[string]upgrade{},
		retired: map[string]bool{}, wake: make(chan struct{}, 1)}
	o.Bus.Subscribe("reputation", func(_ context.Context, c bus.Change) {
		switch c := c.(type) {
		case rooms.Notification:
			s.heard(c)
		case rooms.PartialStateCompleted:
			s.completed(c.RoomID)
		}
	}, rooms.TopicEvent, rooms.TopicPartialStateCompleted)
	s.listenUsers()
	return s
}

// SystemUser is the server-owned user that joins feeds.
func (s *Service) SystemUser() string {
	return "@" + s.o.Config.SystemMxidLocalpart + ":" + s.o.ServerName
}

// heard notes a rule change in a feed's room (rooms.TopicEvent). The
// engine publishes while the room may still be busy, so Run re-reads
// the rule from the room's current state (which also settles changes
// that state resolution made) rather than trust this one event.
func (s *Service) heard(n rooms.Notification) {
	ev := n.Event
	if ev.StateKey() == nil {
		return
	}
	if ev.Type() == spec.MRoomMember && *ev.StateKey() == s.SystemUser() && n.Membership != spec.Join {
		s.removed(ev.RoomID().String(), n.Membership)
		return
	}
	if ev.Type() == tombstoneType && *ev.StateKey() == "" {
		s.tombstoned(ev)
		return
	}
	if _, ok := RuleTypes[ev.Type()]; !ok {
		return
	}
	roomID := ev.RoomID().String()
	if !s.follows(roomID) {
		return
	}
	s.mu.Lock()
	keys := s.changed[roomID]
	if keys == nil {
		keys = map[ruleKey]bool{}
		s.changed[roomID] = keys
	}
	keys[ruleKey{ev.Type(), *ev.StateKey()}] = true
	s.mu.Unlock()
	s.poke()
}

// completed reloads a feed whose room was joined with partial state
// once the full state is in: the join left out state outside the m.
// namespace (Mjolnir's org.matrix.mjolnir.rule.* among it), and the
// resync stores it without a notification per event.
func (s *Service) completed(roomID string) {
	if !s.follows(roomID) {
		return
	}
	s.mu.Lock()
	s.jobs = append(s.jobs, func(ctx context.Context) {
		if err := s.load(ctx, roomID); err != nil && ctx.Err() == nil {
			s.o.Log.Warn("reputation: reloading a feed after its full state arrived", "room", roomID, "err", err)
		}
	})
	s.mu.Unlock()
	s.poke()
}

// removed notes that the feeds' user was made to leave (or banned from)
// a feed's room: no change reaches the server from then on, so the feed
// is shown with an error and joined again at the next retry. Its rules
// stay enforced meanwhile: a feed falls silent, its listings do not
// expire.
func (s *Service) removed(roomID, membership string) {
	if !s.follows(roomID) {
		return
	}
	s.mu.Lock()
	s.jobs = append(s.jobs, func(ctx context.Context) {
		s.stale[roomID] = true
		feeds, err := s.o.Store.ReputationFeeds(ctx)
		if err != nil {
			return
		}
		for _, f := range feeds {
			if f.RoomID == roomID {
				_ = s.o.Store.SetReputationFeedRoom(ctx, f.Feed, roomID, "the feed's user is no longer in the room ("+membership+"); joining again")
			}
		}
	})
	s.mu.Unlock()
	s.poke()
}

func (s *Service) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// do runs job on Run's goroutine and waits for it (or for ctx).
func (s *Service) do(ctx context.Context, job func(context.Context) error) error {
	done := make(chan error, 1)
	s.mu.Lock()
	s.jobs = append(s.jobs, func(runCtx context.Context) { done <- job(runCtx) })
	s.mu.Unlock()
	s.poke()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run follows the feeds until ctx ends: the configured subscriptions
// are stored, every stored one is joined and loaded, and from then on
// rule changes, admin requests and retries are handled in order.
func (s *Service) Run(ctx context.Context) error {
	if err := s.syncConfig(ctx); err != nil && ctx.Err() == nil {
		s.o.Log.Warn("reputation: storing the configured feeds", "err", err)
	}
	s.followAll(ctx)
	s.loadUsers(ctx)
	if err := s.republish(ctx); err != nil && ctx.Err() == nil {
		s.o.Log.Warn("reputation: republishing the blend", "err", err)
	}
	retry := time.NewTicker(retryEvery)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-retry.C:
			s.followAll(ctx)
			s.followUsers(ctx)
			s.followUpgrades(ctx)
		case <-s.wake:
		}
		s.mu.Lock()
		jobs, changed := s.jobs, s.changed
		s.jobs, s.changed = nil, map[string]map[ruleKey]bool{}
		s.mu.Unlock()
		for roomID, keys := range changed {
			if err := s.reread(ctx, roomID, keys); err != nil && ctx.Err() == nil {
				s.o.Log.Warn("reputation: reading a rule change", "room_id", roomID, "err", err)
			}
		}
		for _, job := range jobs {
			job(ctx)
		}
		if err := s.republish(ctx); err != nil && ctx.Err() == nil {
			s.o.Log.Warn("reputation: republishing the blend", "err", err)
		}
	}
}

// reread applies the current state of the changed rules of one feed.
func (s *Service) reread(ctx context.Context, roomID string, keys map[ruleKey]bool) error {
	state, err := s.o.Rooms.CurrentState(ctx, roomID)
	if err != nil {
		return err
	}
	want := make([]rooms.StateKey, 0, len(keys))
	for k := range keys {
		want = append(want, rooms.StateKey{Type: k.typ, StateKey: k.stateKey})
	}
	evs, err := s.o.Rooms.StateEvents(ctx, state, want...)
	if err != nil {
		return err
	}
	for _, k := range want {
		r := StateRule{Type: k.Type, StateKey: k.StateKey}
		if ev := evs[k]; ev != nil {
			r.Content = ev.Content()
		}
		s.o.Blender.SetRule(roomID, r)
		if s.o.Users != nil {
			s.o.Users.blend.SetRule(roomID, r)
		}
	}
	return nil
}

// syncConfig stores the configured feeds as subscriptions of source
// config, and drops those of that source no longer configured.
func (s *Service) syncConfig(ctx context.Context) error {
	stored, err := s.o.Store.ReputationFeeds(ctx)
	if err != nil {
		return err
	}
	configured := map[string]bool{}
	now := time.Now().UnixMilli()
	for _, f := range s.o.Config.Feeds {
		configured[f.Room] = true
		if err := s.o.Store.PutReputationFeed(ctx, store.ReputationFeed{Feed: f.Room, Weight: f.Weight, Allow: f.Allow,
			Source: SourceConfig, AddedTS: now}); err != nil {
			return err
		}
	}
	for _, f := range stored {
		if f.Source == SourceConfig && !configured[f.Feed] {
			if err := s.unfollow(ctx, f); err != nil {
				return err
			}
		}
	}
	return nil
}

// followAll joins and loads every stored feed not yet followed.
func (s *Service) followAll(ctx context.Context) {
	feeds, err := s.o.Store.ReputationFeeds(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.o.Log.Warn("reputation: listing feeds", "err", err)
		}
		return
	}
	for _, f := range feeds {
		if f.RoomID != "" && s.o.Blender.Follows(f.RoomID) && !s.stale[f.RoomID] {
			s.o.Blender.SetFeed(f.RoomID, f.Weight, f.Allow)
			continue
		}
		wasStale := s.stale[f.RoomID]
		delete(s.stale, f.RoomID)
		if err := s.follow(ctx, f, nil); err != nil && ctx.Err() == nil {
			if wasStale {
				s.stale[f.RoomID] = true
			}
			s.o.Log.Warn("reputation: following a feed", "feed", f.Feed, "err", err)
		}
	}
}

// follow resolves a feed, joins its room with the system user if it is
// not joined yet, and loads the room's rules. The outcome is recorded
// with the subscription (its room, or the error met).
func (s *Service) follow(ctx context.Context, f store.ReputationFeed, via []string) error {
	roomID, err := s.join(ctx, f.Feed, f.RoomID, via)
	if err == nil {
		s.o.Blender.SetFeed(roomID, f.Weight, f.Allow)
		err = s.load(ctx, roomID)
		if err != nil {
			s.o.Blender.RemoveFeed(roomID)
		}
	}
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if serr := s.o.Store.SetReputationFeedRoom(ctx, f.Feed, roomID, msg); serr != nil && !errors.Is(serr, store.ErrNotFound) {
		return errors.Join(err, serr)
	}
	return err
}

func (s *Service) join(ctx context.Context, feed, known string, via []string) (string, error) {
	roomID := known
	if roomID == "" {
		var err error
		if roomID, via, err = s.resolve(ctx, feed, via); err != nil {
			return "", err
		}
	}
	user := s.SystemUser()
	if m, err := s.o.Rooms.MembershipOf(ctx, roomID, user); err == nil && m == spec.Join {
		return roomID, nil
	}
	if srv := serverOf(roomID); srv != "" && srv != s.o.ServerName {
		via = append(via, srv)
	}
	if err := s.o.Members.Join(ctx, user, roomID, via, nil); err != nil {
		return roomID, err
	}
	return roomID, nil
}

// resolve turns a feed's name into a room ID and servers to join through.
func (s *Service) resolve(ctx context.Context, feed string, via []string) (string, []string, error) {
	if strings.HasPrefix(feed, "!") {
		return feed, via, nil
	}
	server := serverOf(feed)
	if server != s.o.ServerName && s.o.Aliases.Remote != nil {
		roomID, servers, err := s.o.Aliases.Remote.ResolveAlias(ctx, feed)
		return roomID, append(via, servers...), err
	}
	roomID, _, err := s.o.Aliases.Local.Resolve(ctx, feed)
	return roomID, via, err
}

// load reads every rule of a feed's current state into the blend.
func (s *Service) load(ctx context.Context, roomID string) error {
	rules, err := s.readRules(ctx, roomID)
	if err != nil {
		return err
	}
	s.loadRules(roomID, rules)
	return nil
}

// readRules reads every rule of a feed's current state, and notes an
// upgrade of the room that its state holds (checkTombstone).
func (s *Service) readRules(ctx context.Context, roomID string) ([]StateRule, error) {
	state, err := s.o.Rooms.CurrentState(ctx, roomID)
	if err != nil {
		return nil, err
	}
	s.checkTombstone(ctx, roomID, state)
	var keys []rooms.StateKey
	for k := range state {
		if _, ok := RuleTypes[k.Type]; ok {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	evs, err := s.o.Rooms.StateEvents(ctx, state, keys...)
	if err != nil {
		return nil, err
	}
	rules := make([]StateRule, 0, len(evs))
	for k, ev := range evs {
		rules = append(rules, StateRule{Type: k.Type, StateKey: k.StateKey, Content: ev.Content()})
	}
	return rules, nil
}

// unfollow removes a subscription, its rules, and the system user from
// the room (unless another subscription names the same room).
func (s *Service) unfollow(ctx context.Context, f store.ReputationFeed) error {
	if err := s.o.Store.DeleteReputationFeed(ctx, f.Feed); err != nil {
		return err
	}
	if f.RoomID == "" {
		return nil
	}
	rest, err := s.o.Store.ReputationFeeds(ctx)
	if err != nil {
		return err
	}
	for _, other := range rest {
		if other.RoomID == f.RoomID {
			return nil
		}
	}
	s.o.Blender.RemoveFeed(f.RoomID)
	if s.o.Users != nil && s.o.Users.blend.Follows(f.RoomID) {
		return nil // users' filters still read it
	}
	if _, err := s.o.Members.Leave(ctx, s.SystemUser(), f.RoomID, ""); err != nil {
		s.o.Log.Warn("reputation: leaving a feed's room", "room_id", f.RoomID, "err", err)
	}
	return nil
}

func serverOf(id string) string {
	if _, server, ok := strings.Cut(id, ":"); ok {
		return server
	}
	return ""
}

// Feed is a subscription as the admin API shows it.
type Feed struct {
	store.ReputationFeed
	Rules int
}

// Feeds lists the subscriptions with the rules each holds.
func (s *Service) Feeds(ctx context.Context) ([]Feed, error) {
	stored, err := s.o.Store.ReputationFeeds(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Feed, 0, len(stored))
	for _, f := range stored {
		out = append(out, Feed{ReputationFeed: f, Rules: s.o.Blender.RuleCount(f.RoomID)})
	}
	return out, nil
}

// Subscription is what an admin asks to subscribe to.
type Subscription struct {
	Feed   string // room ID or alias
	Weight float64
	Allow  bool
	Via    []string // servers to join a room ID through
}

// Subscribe adds a subscription (or changes its weight and allow flag),
// and joins and loads the feed before it returns. A feed that cannot be
// joined stays subscribed, its error shown, and is tried again.
func (s *Service) Subscribe(ctx context.Context, sub Subscription) (Feed, error) {
	if err := checkFeedName(sub.Feed); err != nil {
		return Feed{}, err
	}
	if math.IsNaN(sub.Weight) || math.IsInf(sub.Weight, 0) || sub.Weight < 0 {
		return Feed{}, mxerr.InvalidParam("weight must be a number of at least 0")
	}
	err := s.do(ctx, func(ctx context.Context) error {
		existing, err := s.find(ctx, sub.Feed)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err == nil && existing.Source == SourceConfig {
			return mxerr.InvalidParam("%s is subscribed in the configuration; change it there", sub.Feed)
		}
		f := store.ReputationFeed{Feed: sub.Feed, RoomID: existing.RoomID, Weight: sub.Weight, Allow: sub.Allow, Source: SourceAPI, AddedTS: time.Now().UnixMilli()}
		if err := s.o.Store.PutReputationFeed(ctx, f); err != nil {
			return err
		}
		if existing.RoomID != "" && s.o.Blender.Follows(existing.RoomID) {
			s.o.Blender.SetFeed(existing.RoomID, sub.Weight, sub.Allow)
			return nil
		}
		// The error is kept with the subscription for GET; the
		// subscription itself succeeded.
		_ = s.follow(ctx, f, sub.Via)
		return nil
	})
	if err != nil {
		return Feed{}, err
	}
	f, err := s.find(ctx, sub.Feed)
	if err != nil {
		return Feed{}, err
	}
	return Feed{ReputationFeed: f, Rules: s.o.Blender.RuleCount(f.RoomID)}, nil
}

// Unsubscribe removes a subscription named by its feed or room ID.
func (s *Service) Unsubscribe(ctx context.Context, feed string) error {
	return s.do(ctx, func(ctx context.Context) error {
		f, err := s.find(ctx, feed)
		if errors.Is(err, store.ErrNotFound) {
			return mxerr.NotFound("No such feed")
		} else if err != nil {
			return err
		}
		if f.Source == SourceConfig {
			return mxerr.InvalidParam("%s is subscribed in the configuration; remove it there", feed)
		}
		return s.unfollow(ctx, f)
	})
}

// find looks a subscription up by its name or its room ID.
func (s *Service) find(ctx context.Context, feed string) (store.ReputationFeed, error) {
	stored, err := s.o.Store.ReputationFeeds(ctx)
	if err != nil {
		return store.ReputationFeed{}, err
	}
	for _, f := range stored {
		if f.Feed == feed || f.RoomID == feed {
			return f, nil
		}
	}
	return store.ReputationFeed{}, store.ErrNotFound
}

func checkFeedName(feed string) error {
	switch {
	case len(feed) > 255:
		return mxerr.InvalidParam("room is longer than 255 bytes")
	case len(feed) > 1 && feed[0] == '!':
		return nil
	case strings.HasPrefix(feed, "#") && serverOf(feed) != "":
		return nil
	}
	return mxerr.InvalidParam("room must be a room ID or an alias")
}

// FeedStats counts, per action, the decisions a feed (by name or room
// ID) took part in since sinceTS.
func (s *Service) FeedStats(ctx context.Context, feed string, sinceTS int64) (string, map[string]int64, error) {
	f, err := s.find(ctx, feed)
	roomID := feed
	if err == nil {
		roomID = f.RoomID
	} else if !errors.Is(err, store.ErrNotFound) {
		return "", nil, err
	} else if !strings.HasPrefix(feed, "!") {
		return "", nil, mxerr.NotFound("No such feed")
	}
	counts, err := s.o.Store.ReputationFeedStats(ctx, roomID, sinceTS)
	return roomID, counts, err
}

// Decisions pages through the decision log.
func (s *Service) Decisions(ctx context.Context, q store.ReputationDecisionQuery) ([]store.ReputationDecision, int64, error) {
	if q.Feed != "" && !strings.HasPrefix(q.Feed, "!") {
		if f, err := s.find(ctx, q.Feed); err == nil {
			q.Feed = f.RoomID
		}
	}
	return s.o.Store.ReputationDecisions(ctx, q)
}

// DecisionsDropped is how many decisions the log dropped since start
// (its queue full), so that the admin knows the log is incomplete.
func (s *Service) DecisionsDropped() int64 {
	if s.o.DecisionLog == nil {
		return 0
	}
	return s.o.DecisionLog.Dropped()
}

// Check is the blend's verdict, for the admin API's check endpoint
// (nothing is logged).
func (s *Service) Check(ctx context.Context, action Action, kind Kind, entity string) Verdict {
	return s.o.Blender.Check(ctx, action, kind, entity, "")
}

// PolicyFromConfig is the blend's policy as the configuration sets it.
func PolicyFromConfig(c config.Reputation) Policy {
	p := Policy{Thresholds: map[Action]map[Kind]float64{}, Disabled: map[Action]map[Kind]bool{}}
	for a, kinds := range c.Thresholds {
		p.Thresholds[Action(a)] = map[Kind]float64{}
		for k, t := range kinds {
			p.Thresholds[Action(a)][Kind(k)] = t
		}
	}
	for _, d := range c.Disabled {
		a, k, one := strings.Cut(d, ":")
		if p.Disabled[Action(a)] == nil {
			p.Disabled[Action(a)] = map[Kind]bool{}
		}
		if one {
			p.Disabled[Action(a)][Kind(k)] = true
			continue
		}
		for _, k := range Kinds {
			p.Disabled[Action(a)][k] = true
		}
	}
	return p
}
