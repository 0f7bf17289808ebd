// Package rooms is the room engine: the one place that decides what a
// room's state is. Every event, built locally or received from another
// server, enters through it; per room and serialised, the engine checks
// the event against the room version's auth rules, computes the state
// before it (resolving state where its prev_events disagree), decides
// accept, soft-fail or reject, persists it with its state snapshot,
// updates the forward extremities and the current state, assigns its
// stream position and only then tells the listeners on the bus.
package rooms

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/cache"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/periodic"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
	"github.com/myelin-chat/myelin/internal/store"
)

// Store is the storage the engine needs.
type Store interface {
	PersistEvent(ctx context.Context, ne store.NewEvent) (nid, stateAfter int64, err error)
	PersistEvents(ctx context.Context, nes []store.NewEvent) ([]store.Persisted, error)
	LoadRoomHead(ctx context.Context, roomID string) (store.RoomHead, error)
	RoomVersion(ctx context.Context, roomID string) (string, error)
	LoadSnapshot(ctx context.Context, id int64) (store.Snapshot, error)
	SnapshotEntry(ctx context.Context, id int64, k roommodel.StateKey) (parent, nid int64, found bool, err error)
	EventsByNID(ctx context.Context, nids []int64) ([]store.EventRow, error)
	EventsByID(ctx context.Context, ids []string) ([]store.EventRow, error)
	EventJSONByNID(ctx context.Context, nids []int64) ([]store.EventJSONRow, error)
	EventJSONByID(ctx context.Context, ids []string) ([]store.EventJSONRow, error)
	MembershipsByNID(ctx context.Context, nids []int64) (map[int64]string, error)
	EventNIDsByID(ctx context.Context, ids []string) (map[string]int64, error)
	AcceptedEventNIDsByID(ctx context.Context, ids []string) (map[string]int64, error)
	MaxStreamPos(ctx context.Context) (int64, error)
	EventByTxn(ctx context.Context, localpart, device, roomID, scope, txnID string) (string, error)
	TxnsOfDevice(ctx context.Context, localpart, device string, limit int) ([]store.SentTxn, error)
	MarkRedacted(ctx context.Context, eventID, redactedBy string, ts int64) error
	CurrentMembership(ctx context.Context, roomID, userID string) (string, error)
	JoinedServers(ctx context.Context, roomID string) ([]string, error)
	LastEventAtOrBefore(ctx context.Context, roomID string, pos int64) (store.EventRow, error)
	RoomEvents(ctx context.Context, roomID string, after, upto int64, limit int, backwards bool) ([]int64, error)
	EventsByTimestamp(ctx context.Context, roomID string, ts, pos, upto int64, limit int, backwards bool) ([]store.EventRow, error)
	LastJoinPos(ctx context.Context, roomID, userID string) (int64, error)
	UpdateRoomHead(ctx context.Context, roomID string, u store.HeadUpdate) error
	CreateSnapshot(ctx context.Context, roomID string, d store.SnapshotDelta) (int64, error)
	RoomHasRelations(ctx context.Context, roomID string) (bool, error)
	PersistOutliers(ctx context.Context, version string, created int64, rows []store.EventRow) error
	CurrentMembershipEvent(ctx context.Context, roomID, userID string) (string, int64, error)
	OldestEvent(ctx context.Context, roomID string) (string, error)
	MinStreamPos(ctx context.Context) (int64, error)
	RoomForgotten(ctx context.Context, userID, roomID string) (bool, error)
	PartialStateStore
	AwaitedRedactionStore
	HistoryGapStore
}

// AwaitedRedactionStore keeps the redactions that arrived before their
// targets (redaction.go).
type AwaitedRedactionStore interface {
	AwaitRedaction(ctx context.Context, roomID, targetID, redactionID string, ts int64) error
	ExpireAwaitedRedactions(ctx context.Context, now, ts int64, perRoom int) (int, error)
	RoomAwaitsRedactions(ctx context.Context, roomID string) (bool, error)
	AwaitedRedactions(ctx context.Context, roomID, targetID string) ([]string, error)
	ForgetAwaitedRedactions(ctx context.Context, targetID string) error
	UnredactedEventsBy(ctx context.Context, roomID, sender string, limit int) ([]store.RedactionCandidate, error)
}

// PartialStateStore keeps the marks of rooms joined with partial state
// (partial.go).
type PartialStateStore interface {
	MarkPartialState(ctx context.Context, r store.PartialStateRoom) error
	ClearPartialState(ctx context.Context, roomID string) error
	PartialState(ctx context.Context, roomID string) (store.PartialStateRoom, error)
	PartialStateRooms(ctx context.Context) ([]store.PartialStateRoom, error)
	CompletePartialState(ctx context.Context, roomID string, pos int64, missing map[roommodel.StateKey]int64, memberships map[string]string) ([]int64, error)
	SetEventStatus(ctx context.Context, nid int64, status roommodel.Status) error
}

// Notification tells listeners that an event was persisted.
type Notification struct {
	Event *Event
	// Membership is set for m.room.member events: the target's new membership.
	Membership string
	// PrevMembership is the target's membership before the event ("" for
	// none), where the engine knows it: a join that follows a join is a
	// profile change.
	PrevMembership string
}

// Options configure the engine.
type Options struct {
	ServerName     string
	KeyID          gomatrixserverlib.KeyID
	PrivateKey     ed25519.PrivateKey
	DefaultVersion string
	// EventCacheBytes bounds the parsed-event cache, by an estimate of
	// the memory its events hold (eventCost); the cache of event IDs
	// gets an eighth of it besides. StateCacheBytes bounds the snapshot
	// cache by an estimate of its states' memory (stateCost).
	EventCacheBytes int
	StateCacheBytes int
	// LookupCacheBytes bounds the cache of which rooms have relations,
	// by an estimate of its memory; 0: defaultLookupCacheBytes.
	LookupCacheBytes int
	// Ignored is the users each user ignores (m.ignored_user_list, the
	// account data service); nil ignores nobody.
	Ignored IgnoreLists
	// Policy asks rooms' policy servers to sign events (policy.go); nil
	// (no federation) treats every room as using none.
	Policy PolicySigner
	// PolicyFailOpen sends and accepts events without the signature of
	// a policy server that cannot be reached
	// (federation.policy_server_fail_open).
	PolicyFailOpen bool
	// Reputation hides the events of senders the server's reputation
	// feeds list (reputation.Points); nil hides nothing.
	Reputation SenderScreen
	// UserReputation hides, from one user, the events of senders their
	// own reputation filter lists (reputation.UserFilters); nil: none.
	UserReputation UserScreen
}

// IgnoreLists answers whom a user ignores.
type IgnoreLists interface {
	IgnoredUsers(ctx context.Context, userID string) (map[string]bool, error)
}

// Engine is the room engine.
type Engine struct {
	store Store
	opts  Options
	bus   bus.Bus
	now   func() time.Time

	stream *StreamGen
	writer *writer
	// txns knows which transaction IDs devices sent (sentTxns).
	txns *sentTxns

	headsMu sync.Mutex
	heads   map[string]*roomHead
	// idleHeads drops the heads of rooms idle at quiet; held here so that
	// the quiet checks' weak registry keeps it as long as the engine.
	idleHeads *idleHeads

	// memberPos is, per user, the stream position of the latest
	// membership event about them stored since start-up (startPos), so
	// that /sync can tell without a query that nothing changed. It
	// remembers a bounded number of users (cache.Marks).
	memberPos *cache.Marks
	memberMu  sync.Mutex
	memberMax int64
	startPos  int64

	// relRooms remembers which rooms have relations, so that rendering
	// events of rooms without any skips the aggregation queries; a room
	// it forgot is asked of the database again.
	relMu    sync.Mutex
	relRooms *cache.LRU[string, bool]

	// backfillPos is the last stream position given to a backfilled
	// event; they count down from below every other.
	backfillMu     sync.Mutex
	backfillPos    int64
	backfillLoaded bool

	// fullState has, per partial-state room someone waits on, a channel
	// closed when its state is complete (AwaitFullState).
	fullStateMu sync.Mutex
	fullState   map[string]chan struct{}
	// completing has the servers the resident named for each room whose
	// completion has cleared its partial-state mark in the store but not
	// yet dropped the states cached while it was partial (PartialState).
	// Its lock is taken after fullStateMu when both are held:
	// AwaitFullState asks PartialState under fullStateMu.
	completingMu sync.Mutex
	completing   map[string][]string

	events    *cache.LRU[int64, *Event]
	eventIDs  *cache.LRU[string, int64]
	snapshots *cache.LRU[int64, StateMap]
	// stateKeys caches single keys of snapshots not held in snapshots
	// (see stateKeyAt); forgetSnapshots drops them with the snapshots.
	// stateKeysGen counts those drops and orders them, under
	// stateKeysMu, against a key read across one.
	stateKeys    *cache.LRU[snapshotKey, int64]
	stateKeysMu  sync.Mutex
	stateKeysGen atomic.Uint64
	// servers are the servers with joined members in a room's current
	// state, by its snapshot (ServerInRoom; servers.go).
	servers *cache.LRU[int64, []string]
}

// StateMap is a room state: state key to event NID. Maps handed out by
// the engine are shared and must not be modified.
type StateMap map[roommodel.StateKey]int64

// StateKey identifies a piece of room state: its event type and state
// key.
type StateKey = roommodel.StateKey

// OpenStream restores the event stream's position from the store; the
// stream publishes its moves on b (StreamAdvanced).
func OpenStream(ctx context.Context, st interface {
	MaxStreamPos(ctx context.Context) (int64, error)
}, b bus.Bus) (*StreamGen, error) {
	max, err := st.MaxStreamPos(ctx)
	if err != nil {
		return nil, err
	}
	return NewStreamGen(max, b), nil
}

// New makes an engine that assigns positions from stream and tells bus
// of every event it persists.
func New(st Store, stream *StreamGen, b bus.Bus, opts Options) *Engine {
	if opts.EventCacheBytes == 0 {
		opts.EventCacheBytes = defaultEventCacheBytes
	}
	if opts.LookupCacheBytes == 0 {
		opts.LookupCacheBytes = defaultLookupCacheBytes
	}
	if opts.StateCacheBytes == 0 {
		opts.StateCacheBytes = defaultStateCacheBytes
	}
	txns := cache.TrimWhenIdle(newSentTxns())
	e := &Engine{
		store: st, opts: opts, bus: b, now: time.Now,
		stream:     stream,
		writer:     &writer{store: st, txns: txns, kick: make(chan struct{}, 1)},
		txns:       txns,
		heads:      map[string]*roomHead{},
		fullState:  map[string]chan struct{}{},
		completing: map[string][]string{},
		relRooms:   cache.ExpireWhenIdle(cache.NewLRU[string, bool](opts.LookupCacheBytes)),
		memberPos:  cache.NewMarks(stream.Current()),
		startPos:   stream.Current(),
		events:     cache.ExpireWhenIdle(cache.NewLRU[int64, *Event](opts.EventCacheBytes)),
		eventIDs:   cache.ExpireWhenIdle(cache.NewLRU[string, int64](max(1, opts.EventCacheBytes/8))),
		snapshots:  cache.ExpireWhenIdle(cache.NewLRU[int64, StateMap](opts.StateCacheBytes)),
		stateKeys:  cache.ExpireWhenIdle(cache.NewLRU[snapshotKey, int64](stateKeysCacheBytes)),
		servers:    cache.ExpireWhenIdle(cache.NewLRU[int64, []string](serversCacheSize)),
	}
	e.idleHeads = cache.TrimWhenIdle(&idleHeads{e: e})
	return e
}

// ServerName is the engine's server name.
func (e *Engine) ServerName() string { return e.opts.ServerName }

// Stream is the event stream's position generator.
func (e *Engine) Stream() *StreamGen { return e.stream }

// roomHead is the engine's working copy of a room's head: what a new
// event builds on. Its lock serialises the room's event input.
type roomHead struct {
	// mu is the room's lock. Never block on a listener while holding
	// it: no bus.Publish, no send on a bounded channel, no call into
	// another service that may wait. The listeners' workers (push,
	// guests, reputation, delayed events, federation, appservices) ask
	// the engine about rooms, which takes this lock, so a listener
	// whose queue is full would wait on its worker while the worker
	// waits on the lock: the server froze so at 10,000 users (push,
	// docs/benchmarks.md "Scale curve"). Events are published through
	// out, after the lock is released, in the order they were stored.
	mu          sync.Mutex
	out         outbox
	unpublished uint64    // the last of out's notifications this holder queued; guarded by mu
	refs        int       // guarded by Engine.headsMu
	lastUsed    time.Time // guarded by Engine.headsMu
	idleTrims   int       // quiet checks since last used (idleHeads); guarded by Engine.headsMu
	loaded      bool
	id          string
	version     gomatrixserverlib.IRoomVersion
	snapshot    int64
	chainLen    int64
	state       StateMap
	depth       int64
	extremities []string
	// partial: the room was joined with partial state, still being
	// completed (see partial.go).
	partial bool
	// pending is the room's last queued write, until a later lock finds
	// it settled. The head may have moved ahead of the store by it (see
	// sendMessage); if it failed, the head is reloaded from the store.
	pending *pendingWrite
	// awaits says whether the room has redactions waiting for their
	// targets (awaitsUnknown until asked; see awaitedRedactions).
	awaits int8
	// allowed are the auth keys of messages the auth rules allowed
	// (localAuthAllowed).
	allowed map[allowedKey]struct{}
}

// lockRoom returns the room's head, locked; release it with unlockRoom.
// Unknown rooms have version == nil; callers creating a room fill it in.
func (e *Engine) lockRoom(ctx context.Context, roomID string) (*roomHead, error) {
	e.headsMu.Lock()
	h, ok := e.heads[roomID]
	if !ok {
		h = &roomHead{id: roomID}
		e.heads[roomID] = h
	}
	// refs counts who holds a pointer to the head; a head is only ever
	// dropped from the map at zero, so there is never a second head (and
	// a second lock) for one room.
	h.refs++
	e.headsMu.Unlock()
	h.mu.Lock()
	if h.pending != nil {
		if done, err := h.pending.settled(); done {
			h.pending = nil
			if err != nil {
				h.loaded = false
			}
		}
	}
	if h.loaded {
		return h, nil
	}
	sh, err := e.store.LoadRoomHead(ctx, roomID)
	if errors.Is(err, store.ErrNotFound) {
		return h, nil
	}
	if err == nil {
		var v gomatrixserverlib.IRoomVersion
		if v, err = gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(sh.Version)); err == nil {
			var state StateMap
			if state, err = e.snapshotState(ctx, sh.Snapshot); err == nil {
				if h.partial, err = e.isPartial(ctx, roomID); err != nil {
					e.unlockRoom(h)
					return nil, err
				}
				h.loaded, h.version, h.snapshot, h.chainLen, h.state, h.depth, h.extremities = true, v, sh.Snapshot, sh.ChainLen, state, sh.Depth, sh.Extremities
				return h, nil
			}
		}
	}
	e.unlockRoom(h)
	return nil, err
}

// unlockRoom releases a head from lockRoom. The heads of rooms the server
// does not know are dropped at once, so that requests naming random room
// IDs cannot grow the map.
//
// The notifications the holder queued are published after the lock is
// released (see roomHead.mu) and before the reference is dropped, so
// that the head, and with it the room's order of publication, outlives
// them.
func (e *Engine) unlockRoom(h *roomHead) {
	unknown := h.version == nil
	upto := h.unpublished
	h.unpublished = 0
	h.mu.Unlock()
	defer e.releaseHead(h, unknown)
	if upto > 0 {
		h.out.flush(e.publishNotification, upto)
	}
}

// releaseHead drops a reference taken by lockRoom. A sender whose event
// is still being written keeps its reference after unlocking, so that
// the head (ahead of the store) is not evicted meanwhile.
func (e *Engine) releaseHead(h *roomHead, unknown bool) {
	e.headsMu.Lock()
	defer e.headsMu.Unlock()
	h.refs--
	h.lastUsed = e.now()
	h.idleTrims = 0
	if h.refs == 0 && unknown && e.heads[h.id] == h {
		delete(e.heads, h.id)
	}
}

// Flush returns once the group commit has stored everything queued; a
// server calls it on shutdown, after its requests and workers returned
// and before it closes the database.
func (e *Engine) Flush() { e.writer.flush() }

// RunGroupCommit stores the events the engine queues, a batch per
// transaction, until ctx ends, and then what was queued up to then. The
// server stops it after every other worker, as they may still send
// events (see server.Shutdown). Without it, each burst of writes is
// drained by a goroutine of its own.
func (e *Engine) RunGroupCommit(ctx context.Context) error { return e.writer.run(ctx) }

// RunEviction drops the heads of rooms idle for longer than idle (their
// current state is reloaded from the store on next use), every interval
// until ctx ends, so that memory follows the active rooms rather than
// every room ever touched.
func (e *Engine) RunEviction(ctx context.Context, interval, idle time.Duration) error {
	periodic.Every(ctx, interval, func() { e.evictIdle(idle) })
	return nil
}

func (e *Engine) evictIdle(idle time.Duration) int {
	cutoff := e.now().Add(-idle)
	e.headsMu.Lock()
	defer e.headsMu.Unlock()
	n := 0
	for id, h := range e.heads {
		if h.refs == 0 && h.lastUsed.Before(cutoff) {
			delete(e.heads, id)
			n++
		}
	}
	return n
}

// RoomVersion returns a room's version; M_NOT_FOUND for unknown rooms.
func (e *Engine) RoomVersion(ctx context.Context, roomID string) (gomatrixserverlib.IRoomVersion, error) {
	v, err := e.store.RoomVersion(ctx, roomID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, mxerr.NotFound("Unknown room")
	}
	if err != nil {
		return nil, err
	}
	rv, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(v))
	if err != nil {
		return nil, &RefusedError{Err: err}
	}
	return rv, nil
}

// snapshotState returns the full state of a snapshot, walking its delta
// chain up to a cached or root snapshot.
func (e *Engine) snapshotState(ctx context.Context, id int64) (StateMap, error) {
	if id == 0 {
		return StateMap{}, nil
	}
	if s, ok := e.snapshots.Get(id); ok {
		return s, nil
	}
	var chain []store.Snapshot
	var base StateMap
	for cur := id; cur != 0; {
		if s, ok := e.snapshots.Get(cur); ok {
			base = s
			break
		}
		link, err := e.store.LoadSnapshot(ctx, cur)
		if err != nil {
			return nil, fmt.Errorf("rooms: snapshot %d: %w", cur, err)
		}
		chain = append(chain, link)
		cur = link.Parent
	}
	full := make(StateMap, len(base)+len(chain[0].Entries))
	for k, v := range base {
		full[k] = v
	}
	for i := len(chain) - 1; i >= 0; i-- {
		applyDelta(full, chain[i].Entries)
	}
	e.cacheState(id, full)
	return full, nil
}

func applyDelta(m StateMap, delta map[roommodel.StateKey]int64) {
	for k, v := range delta {
		if v == 0 {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
}

// StateAt returns the full state of a snapshot (shared; do not modify).
func (e *Engine) StateAt(ctx context.Context, snapshot int64) (StateMap, error) {
	return e.snapshotState(ctx, snapshot)
}

// CurrentState returns a room's current state (shared; do not modify).
func (e *Engine) CurrentState(ctx context.Context, roomID string) (StateMap, error) {
	h, err := e.lockRoom(ctx, roomID)
	if err != nil {
		return nil, err
	}
	defer e.unlockRoom(h)
	if h.version == nil {
		return nil, mxerr.NotFound("Unknown room")
	}
	return h.state, nil
}

// EventsFor loads the events that rows point at (search hits, relation
// rows, memberships...), in the rows' order, as EventsByNID does; nid
// picks a row's event NID.
func EventsFor[T any](ctx context.Context, e *Engine, rows []T, nid func(T) int64) ([]*Event, error) {
	nids := make([]int64, len(rows))
	for i, r := range rows {
		nids[i] = nid(r)
	}
	return e.EventsByNID(ctx, nids)
}

// EventsByNID loads events by NID through the cache, in the order given;
// unknown NIDs are skipped.
func (e *Engine) EventsByNID(ctx context.Context, nids []int64) ([]*Event, error) {
	// Mostly every event is cached (a woken /sync, an auth check, a
	// member's state): then the answer is built without the map that
	// gathers the loaded ones.
	out := make([]*Event, 0, len(nids))
	found := map[int64]*Event(nil)
	var missing []int64
	for i, n := range nids {
		ev, ok := e.events.Get(n)
		switch {
		case ok && found == nil:
			out = append(out, ev)
		case found == nil:
			found = make(map[int64]*Event, len(nids))
			for _, c := range out {
				found[c.NID] = c
			}
			missing = append(missing, nids[i:i+1]...)
		case ok:
			found[n] = ev
		default:
			missing = append(missing, n)
		}
	}
	if found == nil {
		return out, nil
	}
	rows, err := e.store.EventsByNID(ctx, missing)
	if err != nil {
		return nil, err
	}
	if err := e.addRows(ctx, rows, found); err != nil {
		return nil, err
	}
	out = out[:0]
	for _, n := range nids {
		if ev, ok := found[n]; ok {
			out = append(out, ev)
		}
	}
	return out, nil
}

// EventsByID loads events by event ID, in the order given; unknown IDs
// are skipped.
func (e *Engine) EventsByID(ctx context.Context, ids []string) ([]*Event, error) {
	var nids []int64
	var missing []string
	for _, id := range ids {
		if n, ok := e.eventIDs.Get(id); ok {
			nids = append(nids, n)
		} else {
			missing = append(missing, id)
		}
	}
	found := map[int64]*Event{}
	if len(missing) > 0 {
		rows, err := e.store.EventsByID(ctx, missing)
		if err != nil {
			return nil, err
		}
		if err := e.addRows(ctx, rows, found); err != nil {
			return nil, err
		}
	}
	cached, err := e.EventsByNID(ctx, nids)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]*Event, len(found)+len(cached))
	for _, ev := range found {
		byID[ev.EventID()] = ev
	}
	for _, ev := range cached {
		byID[ev.EventID()] = ev
	}
	out := make([]*Event, 0, len(ids))
	for _, id := range ids {
		if ev, ok := byID[id]; ok {
			out = append(out, ev)
		}
	}
	return out, nil
}

// Event loads one event by ID; M_NOT_FOUND when unknown.
func (e *Engine) Event(ctx context.Context, id string) (*Event, error) {
	evs, err := e.EventsByID(ctx, []string{id})
	if err != nil {
		return nil, err
	}
	if len(evs) == 0 {
		return nil, mxerr.NotFound("Event not found")
	}
	return evs[0], nil
}

// addRows parses stored rows, caches them and adds them to found.
func (e *Engine) addRows(ctx context.Context, rows []store.EventRow, found map[int64]*Event) error {
	versions := map[string]gomatrixserverlib.IRoomVersion{}
	for _, r := range rows {
		v, ok := versions[r.RoomID]
		if !ok {
			var err error
			if v, err = e.RoomVersion(ctx, r.RoomID); err != nil {
				if v, err = e.outOfBandVersion(ctx, r, err); err != nil {
					return err
				}
			}
			versions[r.RoomID] = v
		}
		ev, err := eventFromRow(r, v)
		if err != nil {
			return err
		}
		e.cacheEvent(ev)
		found[ev.NID] = ev
	}
	return nil
}

func (e *Engine) cacheEvent(ev *Event) {
	id := ev.EventID()
	e.events.PutCost(ev.NID, ev, eventCost(ev))
	e.eventIDs.PutCost(id, ev.NID, len(id)+idEntryOverhead)
}

// defaultEventCacheBytes is the event cache's bound when the options
// give none (memory.event_cache_mib's default).
const defaultEventCacheBytes = 8 << 20

// eventCost estimates the memory a cached event holds: its JSON, the
// parsed copies gomatrixserverlib keeps beside it (content, auth and
// prev events, signatures, the redacted and canonical forms; heap
// profiles of issue 20's load run put the whole at about four times
// the JSON) and the cache's own entry. The cache was bounded at 20,000
// events before, whatever their size: 30 MB of a 50 MB live heap after
// 20,000 messages.
func eventCost(ev *Event) int {
	return 4*len(ev.JSON()) + 256
}

// idEntryOverhead is an event ID entry's memory besides the ID itself:
// the map's slot, the list element and the entry.
const idEntryOverhead = 112

// StateEvents loads the events of a state map, keyed like the map.
func (e *Engine) StateEvents(ctx context.Context, state StateMap, keys ...roommodel.StateKey) (map[roommodel.StateKey]*Event, error) {
	var nids []int64
	if len(keys) == 0 {
		nids = make([]int64, 0, len(state))
		for _, n := range state {
			nids = append(nids, n)
		}
	} else {
		for _, k := range keys {
			if n, ok := state[k]; ok {
				nids = append(nids, n)
			}
		}
	}
	evs, err := e.EventsByNID(ctx, nids)
	if err != nil {
		return nil, err
	}
	out := make(map[roommodel.StateKey]*Event, len(evs))
	for _, ev := range evs {
		out[ev.Key()] = ev
	}
	return out, nil
}

// StateEvent loads one piece of state from a state map; nil if absent.
// It is StateEvents for one key without its map (a member's membership,
// a room's history visibility: several per woken /sync).
func (e *Engine) StateEvent(ctx context.Context, state StateMap, typ, stateKey string) (*Event, error) {
	k := roommodel.StateKey{Type: typ, StateKey: stateKey}
	n, ok := state[k]
	if !ok {
		return nil, nil
	}
	evs, err := e.EventsByNID(ctx, []int64{n})
	if err != nil || len(evs) == 0 || evs[0].Key() != k {
		return nil, err
	}
	return evs[0], nil
}

// RoomHasRelations reports whether any event of the room relates to
// another (a reply in a thread, an edit, a reaction, a reference).
func (e *Engine) RoomHasRelations(ctx context.Context, roomID string) (bool, error) {
	e.relMu.Lock()
	has, known := e.relRooms.Get(roomID)
	e.relMu.Unlock()
	if known {
		return has, nil
	}
	has, err := e.store.RoomHasRelations(ctx, roomID)
	if err != nil {
		return false, err
	}
	e.relMu.Lock()
	defer e.relMu.Unlock()
	// A relation persisted meanwhile has set the flag already; keep it.
	if meanwhile, _ := e.relRooms.Get(roomID); meanwhile {
		return true, nil
	}
	e.relRooms.PutCost(roomID, has, relFlagCost(roomID))
	return has, nil
}

func (e *Engine) noteRelation(roomID string) {
	e.relMu.Lock()
	defer e.relMu.Unlock()
	e.relRooms.PutCost(roomID, true, relFlagCost(roomID))
}

// MembershipUnchanged reports whether no membership event about the user
// has been stored after position after. It is recorded before an event's
// position becomes readable, so a reader that saw position p also sees
// every membership event up to p; before start-up it cannot tell. A
// membership that state resolution changes counts too (see updateHead).
func (e *Engine) MembershipUnchanged(userID string, after int64) bool {
	return e.memberPos.Unchanged(userID, after)
}

// updateHead stores a head computed after the events that caused it
// (state resolution). Memberships it changes have no event of their own
// at a new position, so they are noted one past the readable position:
// readers that cached a user's memberships up to now look again, those
// reading from then on see the stored change.
func (e *Engine) updateHead(ctx context.Context, roomID string, u store.HeadUpdate) error {
	if err := e.store.UpdateRoomHead(ctx, roomID, u); err != nil {
		return err
	}
	pos := e.stream.Current() + 1
	for k := range u.CurrentState {
		if k.Type == spec.MRoomMember {
			e.noteMembership(k.StateKey, pos)
		}
	}
	return nil
}

func (e *Engine) noteMembership(userID string, pos int64) {
	e.memberPos.Note(userID, pos)
	e.memberMu.Lock()
	defer e.memberMu.Unlock()
	e.memberMax = max(e.memberMax, pos)
}

// MembershipsUnchangedSince reports whether no membership event of
// anyone was stored after position after (as MembershipUnchanged, for
// every user at once).
func (e *Engine) MembershipsUnchangedSince(after int64) bool {
	if after < e.startPos {
		return false
	}
	e.memberMu.Lock()
	defer e.memberMu.Unlock()
	return e.memberMax <= after
}
