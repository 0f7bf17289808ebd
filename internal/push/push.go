// Package push owns push notifications (spec "Push Notifications"): each
// user's push rules, their evaluation against every new event for every
// local member of its room, the notifications and unread counts that
// result, and their delivery to push gateways through the users' pushers.
//
// Evaluation runs off the request path: the service listens on the room
// engine's bus and works through a bounded queue in its own goroutine;
// mautrix-go's pushrules package is the evaluator.
package push

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix/pushrules"

	"github.com/myelin-chat/myelin/internal/accountdata"
	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/cache"
	"github.com/myelin-chat/myelin/internal/outbound"
	"github.com/myelin-chat/myelin/internal/queue"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// Store is the storage push needs.
type Store interface {
	AddPushNotifications(ctx context.Context, ns []store.PushNotification) ([]store.UnreadDelta, error)
	UnreadPushCounts(ctx context.Context, userID, roomID string) ([]store.ThreadCounts, error)
	TotalUnreadPush(ctx context.Context, userID string) (int64, error)
	MarkPushRead(ctx context.Context, userID, roomID, threadID string, allThreads bool, pos int64) (bool, error)
	PushNotifications(ctx context.Context, userID string, before int64, limit int, onlyHighlight bool) ([]store.PushNotification, error)
	PushCountsChanged(ctx context.Context, userID string, after, upto int64) ([]string, error)
	SetPusher(ctx context.Context, p store.Pusher, appendOthers bool) error
	DeletePusher(ctx context.Context, localpart, appID, pushkey string) error
	Pushers(ctx context.Context, localpart string) ([]store.Pusher, error)
	PusherLocalparts(ctx context.Context) ([]string, error)
	JoinedMembers(ctx context.Context, roomID string) ([]string, error)
	PushPruneBounds(ctx context.Context, readBefore, allBefore int64) (readUpto, allUpto int64, err error)
	UserIDsAfter(ctx context.Context, after string, limit int) ([]string, error)
	PruneUserNotifications(ctx context.Context, userID string, after, readUpto, allUpto int64, limit int) (expired []store.UnreadDelta, deleted int, next int64, done bool, err error)
	PrunePushEvents(ctx context.Context, allUpto int64) (int64, error)
}

// Options configure the service.
type Options struct {
	ServerName string
	Log        *slog.Logger
	// Bus brings new events (rooms.TopicEvent) and carries
	// CountsChanged; nil: a bus of its own.
	Bus bus.Bus
	// QueueSize bounds the events waiting for evaluation; when it is
	// full the engine waits (back-pressure) rather than events being lost.
	QueueSize int
	// HTTPClient posts to push gateways, whose URLs users choose: it
	// must connect only where the outbound policy permits (nil: a client
	// of outbound.Default()).
	HTTPClient *http.Client
	// Limits bound the push rules users may store and have evaluated;
	// zero means DefaultLimits.
	Limits Limits
	// InitialBackoff and MaxBackoff bound a failing pusher's retries
	// (Synapse: 1 s doubling to 1 h); GiveUpAfter drops a notification
	// that could not be delivered for that long (Synapse: 24 h).
	InitialBackoff, MaxBackoff, GiveUpAfter time.Duration
	// MemberCacheBytes bounds the cache of each room's members in its
	// latest state by an estimate of its memory (memberStateCost); 0:
	// defaultMemberCacheBytes.
	MemberCacheBytes int
	// UnreadCacheBytes bounds the cache of users' unread counts per room
	// by an estimate of its memory (unreadCost); 0:
	// defaultUnreadCacheBytes.
	UnreadCacheBytes int
	// Progress is where the service records how far it has evaluated
	// (nil: its own). The server makes it first so that the /sync
	// notifier, which waits on it, is built and hears of new events
	// before push does.
	Progress *Progress
	// MaxTagBytes bounds a room's tags when a user's are copied to a
	// replacement room (zero: 256 KiB, the default account data bound).
	MaxTagBytes int
	// Invites says which invites a user's invite permission keeps from
	// them (membership.InviteRules); those notify nobody, as they never
	// reach /sync. Nil: none.
	Invites InviteFilter
	// ThreadSubscriptions answers the MSC4306 thread_subscription
	// condition; nil: no one follows any thread.
	ThreadSubscriptions ThreadSubscriptions
}

// InviteFilter tells whether an invite is hidden from its invitee.
type InviteFilter interface {
	Hides(ctx context.Context, invitee, inviter string) (bool, error)
}

// Progress is the stream position up to which events have been
// evaluated and their counts stored (clientsync.Gate: /sync wakes for
// an event once its unread counts are there too).
type Progress struct{ w *cache.Watermark }

// NewProgress starts at stream position pos (the stream's current one).
func NewProgress(pos int64) *Progress { return &Progress{w: cache.NewWatermark(pos)} }

// Through is the position up to which events have been evaluated.
func (p *Progress) Through() int64 { return p.w.Get() }

// Processed is closed when Through next moves.
func (p *Progress) Processed() <-chan struct{} { return p.w.Moved() }

// Service is the push service.
type Service struct {
	opts        Options
	store       Store
	rooms       *rooms.Engine
	accountData *accountdata.Service
	stream      *rooms.StreamGen
	// countMarks are each user's latest stored notification, so that
	// /sync skips the query for users whose counts did not change.
	countMarks *cache.Marks
	// recentCounts are the rooms whose counts changed lately, per user,
	// so that /sync finds them without a query.
	recentCounts *recentCountChanges
	// unread caches unread counts per user and room. countsMu orders
	// cache fills against changes: a change holds it for writing across
	// its commit and the cache update, a fill for reading across its
	// query and store, so that no fill can store counts read before a
	// change after the change dropped them.
	countsMu sync.RWMutex
	unread   *cache.LRU[countsKey, []store.ThreadCounts]

	queue *queue.Queue[rooms.Notification]
	// pending counts the events published and not yet evaluated: queued
	// or in the batch the worker holds (the queue's length alone is 0
	// while a batch of joins into rooms of 5,000 is being evaluated).
	pending atomic.Int64
	// stopped closes when Run ends, so that a publisher blocked on a
	// full queue is released at shutdown.
	stopped chan struct{}
	// startPos is the stream position at start-up: events at or below it
	// (backfilled history) are never evaluated, as in Synapse.
	startPos int64

	// through is the stream position up to which events are evaluated
	// and their notifications stored.
	through *Progress

	// rulesets caches users' rules in the evaluator's form; rulesMu
	// orders loads against invalidation (see update). Like recentCounts
	// it lets go of what a quiet server no longer uses
	// (cache.ExpireWhenIdle): a user's rules are some twenty small
	// objects made when the user's first event of a burst is evaluated,
	// and kept, they pinned the heap's spans the burst filled.
	rulesMu  sync.Mutex
	rulesets *cache.LRU[string, userRuleset]
	// memberCache holds each room's members in the latest state the
	// worker judged an event of it in (see members).
	memberCache *cache.LRU[string, *memberState]
	// completions counts partial-state rooms completed (see members).
	completions atomic.Uint64
	deliver     *deliverer
	// hold lets a test keep the worker from the events it has taken, so
	// that the room moves on before they are evaluated (HoldEvaluation).
	hold sync.RWMutex
}

// CountsChanged is published for a user whose notification counts
// changed, once the change is readable, to wake their /sync.
type CountsChanged struct {
	UserID string `json:"user_id"`
}

// TopicCountsChanged is the topic of CountsChanged.
const TopicCountsChanged = "push.counts"

// Topic implements bus.Change.
func (CountsChanged) Topic() string { return TopicCountsChanged }

// GatewayClient is the client push gateways are reached with: through
// policy, each redirect checked, ten seconds a request.
func GatewayClient(policy *outbound.Policy) *http.Client {
	return policy.Client(outbound.ClientOptions{Timeout: 10 * time.Second, MaxRedirects: 10})
}

// New makes the service and registers m.push_rules as server-managed
// account data.
func New(st Store, engine *rooms.Engine, ad *accountdata.Service, opts Options) *Service {
	if opts.QueueSize == 0 {
		opts.QueueSize = 10000
	}
	if opts.Bus == nil {
		opts.Bus = bus.New()
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Limits == (Limits{}) {
		opts.Limits = DefaultLimits
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = GatewayClient(outbound.Default())
	}
	if opts.InitialBackoff == 0 {
		opts.InitialBackoff = time.Second
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = time.Hour
	}
	if opts.GiveUpAfter == 0 {
		opts.GiveUpAfter = 24 * time.Hour
	}
	if opts.MaxTagBytes == 0 {
		opts.MaxTagBytes = 256 << 10
	}
	if opts.Progress == nil {
		opts.Progress = NewProgress(engine.Stream().Current())
	}
	if opts.UnreadCacheBytes <= 0 {
		opts.UnreadCacheBytes = defaultUnreadCacheBytes
	}
	if opts.MemberCacheBytes <= 0 {
		opts.MemberCacheBytes = defaultMemberCacheBytes
	}
	s := &Service{
		opts: opts, store: st, rooms: engine, accountData: ad, stream: engine.Stream(),
		queue: queue.New[rooms.Notification](opts.QueueSize), stopped: make(chan struct{}),
		startPos:     engine.Stream().Current(),
		through:      opts.Progress,
		rulesets:     cache.ExpireWhenIdle(cache.NewLRU[string, userRuleset](100000)),
		memberCache:  cache.ExpireWhenIdle(cache.NewLRU[string, *memberState](opts.MemberCacheBytes)),
		countMarks:   cache.NewMarks(engine.Stream().Current()),
		recentCounts: &recentCountChanges{users: cache.ExpireWhenIdle(cache.NewLRU[string, *roomChanges](100000))},
		unread:       cache.ExpireWhenIdle(cache.NewLRU[countsKey, []store.ThreadCounts](opts.UnreadCacheBytes)),
	}
	s.deliver = newDeliverer(s)
	ad.Manage(accountdata.TypePushRules, s.renderRules)
	opts.Bus.Subscribe("push", func(_ context.Context, c bus.Change) { s.Publish(c.(rooms.Notification)) }, rooms.TopicEvent)
	opts.Bus.Subscribe("push-completions", func(context.Context, bus.Change) { s.completions.Add(1) }, rooms.TopicPartialStateCompleted)
	// Push rules are account data: a change written by another process
	// reaches this one's cache only through the bus (update drops it at
	// once in this one).
	opts.Bus.Subscribe("push-rules", func(_ context.Context, c bus.Change) {
		if ch := c.(accountdata.Changed); ch.RoomID == "" && ch.Type == accountdata.TypePushRules {
			s.dropRuleset(ch.UserID)
		}
	}, accountdata.TopicChanged)
	return s
}

// Publish hears of a new event (rooms.TopicEvent on the bus): it queues the event for evaluation,
// waiting while the queue is full. The engine calls it without the room's lock, which the
// worker may need to catch up (rooms.roomHead.mu).
func (s *Service) Publish(n rooms.Notification) {
	if n.Event.StreamPos <= s.startPos {
		return
	}
	s.pending.Add(1)
	if !s.queue.Push(n, s.stopped) {
		s.pending.Add(-1)
	}
}

// Backlog is how many published events the worker has yet to evaluate.
func (s *Service) Backlog() int64 { return s.pending.Load() }

// maxBatch bounds how many queued events one transaction stores the
// notifications of.
const maxBatch = 256

// Run evaluates queued events and delivers notifications until ctx ends.
// Whatever is queued when the worker gets to it is evaluated together
// and stored in one transaction.
func (s *Service) Run(ctx context.Context) error {
	defer close(s.stopped)
	if err := s.deliver.load(ctx); err != nil {
		s.opts.Log.Warn("push: loading pushers", "err", err)
	}
	defer s.deliver.wait()
	var pace pacer
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.queue.Ready():
		}
		if wait := pace.wait(time.Now()); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
		batch := s.queue.Take(maxBatch)
		if len(batch) == 0 {
			continue
		}
		pace.took(time.Now())
		// Waits out a test's hold; uncontended otherwise.
		s.hold.RLock()
		s.hold.RUnlock()
		var done []evaluated
		for _, n := range batch {
			if err := s.copyOnUpgradeJoin(ctx, n); err != nil && ctx.Err() == nil {
				s.opts.Log.Warn("push: following a user to an upgraded room", "event_id", n.Event.EventID(), "err", err)
			}
			e, err := s.safeEvaluate(ctx, n)
			if err != nil {
				if ctx.Err() == nil {
					s.opts.Log.Warn("push: evaluating event", "event_id", n.Event.EventID(), "err", err)
				}
				continue
			}
			done = append(done, e)
		}
		pace.stored(len(batch), done)
		if err := s.storeBatch(ctx, done); err != nil && ctx.Err() == nil {
			s.opts.Log.Warn("push: storing notifications", "events", len(done), "err", err)
		}
		// Events are published about in stream order but for concurrent
		// writes to different rooms; one published out of order then
		// counts as processed early, which only costs its room's members
		// a second wake-up for the counts.
		last := int64(0)
		for _, n := range batch {
			last = max(last, n.Event.StreamPos)
		}
		s.through.w.Raise(last)
		s.pending.Add(-int64(len(batch)))
	}
}

// batchGap is the least time between the starts of two batches while
// events come faster than the worker stores them one by one. A batch's
// cost is mostly per batch, not per event: in a room of 50 each batch
// writes a notifications row and a push_unread upsert per recipient and
// commits (WAL frames, fsync) whatever its number of events, so batches
// of ~6 events at 1,400 events/s cost ~300 us of CPU per event
// (docs/benchmarks.md "Push worker, fifth pass"). Waiting lets the
// next group commits' events join the batch (~16 then). It holds /sync
// wake-ups back by as much at most (clientsync.WithGate, whose maxHold
// of 50 ms it must stay well under), and only under load: an event after
// a quiet spell, a stream of events each stored before the next arrives,
// and a backlog of more than a full batch are taken at once.
const batchGap = 20 * time.Millisecond

// pacer spaces the worker's batches under load (batchGap).
type pacer struct {
	// last is when the previous batch was taken.
	last time.Time
	// busy is whether it held more than one event, fewer than a full
	// batch, and stored notifications: the events came faster than
	// batches of one could be stored, and waiting saves rows and
	// commits.
	busy bool
}

// wait is how long to let events gather before taking a batch at now.
func (p *pacer) wait(now time.Time) time.Duration {
	if !p.busy {
		return 0
	}
	return max(batchGap-now.Sub(p.last), 0)
}

// took records that a batch was taken at now.
func (p *pacer) took(now time.Time) { p.last = now }

// stored records the batch's size and evaluations.
func (p *pacer) stored(events int, done []evaluated) {
	p.busy = false
	if events < 2 || events >= maxBatch {
		return
	}
	for _, e := range done {
		if len(e.notes) > 0 {
			p.busy = true
			return
		}
	}
}

// Through is the stream position up to which events have been evaluated
// and their counts stored.
func (s *Service) Through() int64 { return s.through.Through() }

// Processed is closed when Through next moves.
func (s *Service) Processed() <-chan struct{} { return s.through.Processed() }

// safeEvaluate is evaluate that survives a panic in the evaluator (rules
// and events come from users): the event is skipped, the server lives.
func (s *Service) safeEvaluate(ctx context.Context, n rooms.Notification) (e evaluated, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("evaluator panicked: %v", r)
		}
	}()
	return s.evaluate(ctx, n)
}

// ruleset is a user's rules in the evaluator's form, cached until they
// change.
func (s *Service) ruleset(ctx context.Context, userID string) (userRuleset, error) {
	if rs, ok := s.rulesets.Get(userID); ok {
		return rs, nil
	}
	s.rulesMu.Lock()
	defer s.rulesMu.Unlock()
	stored, err := s.accountData.Stored(ctx, userID, "", accountdata.TypePushRules)
	if err != nil {
		return userRuleset{}, err
	}
	if len(stored) == 0 {
		// Most users: see defaultRulesFor.
		out := userRuleset{rules: defaultRulesFor(userID), isDefault: true}
		s.rulesets.PutCost(userID, out, 1)
		return out, nil
	}
	rs, bad, err := evaluatorRules(parseUserRules(stored).merged(userID))
	if err != nil {
		return userRuleset{}, err
	}
	if len(bad) > 0 {
		s.opts.Log.Warn("push rules that cannot be loaded are not evaluated", "user", userID, "rules", bad)
	}
	compiled, skipped := compileRules(rs, s.opts.Limits)
	if skipped > 0 {
		s.opts.Log.Warn("push rules over the limits are not evaluated", "user", userID, "skipped", skipped)
	}
	out := userRuleset{rules: compiled}
	s.rulesets.PutCost(userID, out, 1+compiled.size)
	return out, nil
}

// userRuleset is a user's rules in the evaluator's form; isDefault
// when the user never changed them.
type userRuleset struct {
	rules     *compiledRules
	isDefault bool
}

// evaluatorRules turns rules into mautrix's evaluator's form. A rule the
// evaluator cannot load (stored before the rules were validated, e.g. a
// condition whose key is a number) is left out and named in bad: it
// must not take the user's other rules, the defaults and every other
// recipient of the event down with it.
func evaluatorRules(rules *Ruleset) (rs *evalRuleset, bad []string, err error) {
	loadable := &Ruleset{}
	for _, kind := range kinds {
		out := loadable.kind(kind)
		*out = []*Rule{}
		for _, r := range *rules.kind(kind) {
			raw, err := json.Marshal(r)
			if err == nil {
				err = json.Unmarshal(raw, &pushrules.PushRule{})
			}
			if err != nil {
				bad = append(bad, kind+"/"+r.RuleID)
				continue
			}
			*out = append(*out, r)
		}
	}
	raw, err := json.Marshal(loadable)
	if err != nil {
		return nil, bad, err
	}
	rs = &evalRuleset{}
	if err := json.Unmarshal(raw, &rs.PushRuleset); err != nil {
		return nil, bad, err
	}
	// mautrix knows the spec's five kinds only: postcontent rules are
	// loaded one by one, as the condition rules they are.
	for _, r := range loadable.Postcontent {
		raw, _ := json.Marshal(r)
		pr := &pushrules.PushRule{}
		if err := json.Unmarshal(raw, pr); err != nil {
			return nil, bad, err
		}
		pr.Type = pushrules.OverrideRule
		keepSubscribed(raw, pr)
		rs.postcontent = append(rs.postcontent, pr)
	}
	return rs, bad, nil
}

// evalRuleset is a ruleset in mautrix's form with the postcontent kind
// mautrix lacks.
type evalRuleset struct {
	pushrules.PushRuleset
	postcontent []*pushrules.PushRule
}
