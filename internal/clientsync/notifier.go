// Package clientsync serves /sync: it works out what changed for a user since a
// stream token and long-polls until something does.
package clientsync

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/cache"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// Notifier wakes waiting /sync requests when an event in one of their
// rooms, or about their user, becomes readable. It is the engine's bus
// listener. It knows each active room's joined local users, so that a
// waiting request registers by user alone and costs no query per wait.
type Notifier struct {
	stream  *rooms.StreamGen
	members Members
	local   string // ":" + the server name: only local users sync here

	mu      sync.Mutex
	pending []held
	// gate, when set, holds events back until it has processed them, for
	// at most maxHold (see WithGate).
	gate    Gate
	maxHold time.Duration
	// heldBack tells Run that Publish held a notification back, or that
	// WakeRoommates deferred presence wake-ups, so that Run sets its
	// timer for them.
	heldBack chan struct{}
	// advanced holds a value when the stream moved since Run last looked
	// (rooms.StreamAdvanced on the bus).
	advanced <-chan struct{}
	byUser   map[string]map[*Waiter]struct{}
	// joined caches the joined local users of rooms that had events,
	// loaded on a room's first event and kept current from its membership
	// events. It is bounded by an estimate of its memory (joinedBytes,
	// setCost) and dropped while the server is quiet: it is the database's
	// answer, loaded again on a room's next event.
	joined      *cache.LRU[string, map[string]bool]
	joinedBytes int
	// roomLists are users' joined rooms, for presence wake-ups and for
	// events of rooms whose member list joined does not hold (nil: from
	// the rooms' member lists; see WithRoomLists).
	roomLists RoomLists
	// waitingIn indexes the waiting users by the rooms of their room
	// lists, read when they registered, so that an event wakes its room's
	// waiters without walking everyone's (wakeInRoomLocked); listed are
	// those lists, by user. unlisted are the waiting users whose list was
	// not held then, or may have changed since (a state event was
	// flushed): every room's events wake them. All only with roomLists.
	waitingIn map[string]map[string]struct{}
	listed    map[string][]string
	unlisted  map[string]struct{}

	// regSeq numbers registrations (Waiter.seq).
	regSeq uint64
	// presence coalesces roommates' presence wake-ups (presencewake.go).
	presence presenceWakes
}

// held is a notification waiting to be flushed, since when. The room
// ID is parsed once: Event.RoomID validates the ID with a regular
// expression on every call, and every flush scans all that is held.
type held struct {
	rooms.Notification
	roomID string
	since  time.Time
}

// Gate is a listener whose work on an event changes what /sync answers
// for it: push's unread counts.
type Gate interface {
	// Through is the stream position up to which events are processed.
	Through() int64
	// Processed is closed when Through next moves.
	Processed() <-chan struct{}
}

// NotifierOption configures a notifier when it is made.
type NotifierOption func(*Notifier)

// WithGate makes the notifier wake requests for an event only once gate
// has processed it, or maxHold after it was published, whichever comes
// first. Push counts an event's notifications after the event is stored;
// a request woken before that answers with the event and stale counts,
// and is woken again for the counts a moment later: every member of a
// busy room would sync twice per message. Synapse likewise computes push
// actions before it notifies.
func WithGate(gate Gate, maxHold time.Duration) NotifierOption {
	return func(n *Notifier) { n.gate, n.maxHold = gate, maxHold }
}

// Members lists a room's joined members.
type Members interface {
	JoinedMembers(ctx context.Context, roomID string) ([]string, error)
	MembershipsOf(ctx context.Context, userID string, memberships ...string) ([]store.RoomMembership, error)
}

// Waiter is one waiting request; C is closed when it should look again.
type Waiter struct {
	C    chan struct{}
	user string
	// seq orders registrations: a deferred presence wake-up fires only
	// the waiters registered before the change was heard of.
	seq uint64
	// presence is whether the request reports others' presence (see
	// RegisterWithPresence); presence changes wake no other.
	presence bool
	// fired is set, under the notifier's lock, when C is closed and the
	// waiter dropped from the notifier.
	fired atomic.Bool
}

// NewNotifier makes a notifier for the event stream of a server.
//
// It subscribes to changes (nil: none) for the changes outside the
// event stream that wake a /sync (see listen).
func NewNotifier(stream *rooms.StreamGen, members Members, serverName string, changes bus.Bus, opts ...NotifierOption) *Notifier {
	n := &Notifier{stream: stream, members: members, local: ":" + serverName, heldBack: make(chan struct{}, 1),
		byUser: map[string]map[*Waiter]struct{}{}, joinedBytes: DefaultCacheBytes / 2,
		waitingIn: map[string]map[string]struct{}{}, listed: map[string][]string{}, unlisted: map[string]struct{}{},
		presence: presenceWakes{every: PresenceWakeInterval, pending: map[string]uint64{}, waiting: map[string]int{}}}
	for _, o := range opts {
		o(n)
	}
	n.joined = cache.ExpireWhenIdle(cache.NewLRU[string, map[string]bool](n.joinedBytes))
	if changes != nil {
		n.listen(changes)
		n.advanced = rooms.Advances(changes, "sync")
	}
	return n
}

// Publish hears of a new event (the bus's rooms.TopicEvent). A notification is held back until every
// position before it is readable, so that a woken request finds the event.
func (n *Notifier) Publish(not rooms.Notification) {
	h := held{Notification: not, roomID: not.Event.RoomID().String(), since: time.Now()}
	n.mu.Lock()
	n.pending = append(n.pending, h)
	n.mu.Unlock()
	if _, holding := n.flush(); holding {
		select {
		case n.heldBack <- struct{}{}:
		default:
		}
	}
}

// Run flushes held-back notifications whenever the stream advances,
// and coalesced presence wake-ups when they are due, until ctx ends.
func (n *Notifier) Run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var gated <-chan struct{}
		if n.gate != nil {
			gated = n.gate.Processed()
		}
		deadline, holding := n.flush()
		if due, pending := n.flushPresence(time.Now()); pending && (!holding || due.Before(deadline)) {
			deadline, holding = due, true
		}
		var expired <-chan time.Time
		if holding {
			timer.Reset(time.Until(deadline))
			expired = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-n.advanced:
		case <-gated:
		case <-expired:
		case <-n.heldBack:
		}
	}
}

// flush loads the member lists the pending notifications need, then
// wakes their requests. The lock is never held across a query: every
// Register, Unregister and wake-up of the server queues on it.
func (n *Notifier) flush() (deadline time.Time, holding bool) {
	n.mu.Lock()
	var missing []string
	for _, not := range n.pending {
		if n.roomLists != nil {
			break // uncached rooms' waiters are found from their room lists
		}
		if id := not.roomID; !n.joined.Contains(id) && !slices.Contains(missing, id) {
			missing = append(missing, id)
		}
	}
	n.mu.Unlock()
	n.loadJoined(missing)
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.flushLocked()
}

// flushLocked wakes the requests of the pending notifications that can
// go; it returns when the first one the gate holds back may go anyway.
func (n *Notifier) flushLocked() (deadline time.Time, holding bool) {
	if len(n.pending) == 0 {
		return
	}
	current := n.stream.Current()
	through, now := int64(0), time.Now()
	if n.gate != nil {
		through = n.gate.Through()
	}
	kept := n.pending[:0]
	for _, not := range n.pending {
		if not.Event.StreamPos > current {
			kept = append(kept, not)
			continue
		}
		if n.gate != nil && not.Event.StreamPos > through && now.Sub(not.since) < n.maxHold {
			kept = append(kept, not)
			if d := not.since.Add(n.maxHold); !holding || d.Before(deadline) {
				deadline, holding = d, true
			}
			continue
		}
		roomID := not.roomID
		n.followRoomListsLocked(not.Event)
		if n.roomLists != nil && !n.joined.Contains(roomID) {
			if not.Event.Type() == spec.MRoomMember && not.Event.StateKey() != nil {
				n.wakeLocked(n.byUser[*not.Event.StateKey()])
			}
			n.wakeInRoomLocked(roomID)
			continue
		}
		users, known := n.joinedLocked(roomID)
		if not.Event.Type() == spec.MRoomMember && not.Event.StateKey() != nil {
			target := *not.Event.StateKey()
			n.wakeLocked(n.byUser[target])
			if known && strings.HasSuffix(target, n.local) {
				if not.Membership == spec.Join {
					users[target] = true
				} else {
					delete(users, target)
				}
				n.joined.PutCost(roomID, users, setCost(len(users)))
			}
		}
		for u := range users {
			n.wakeLocked(n.byUser[u])
		}
		// Requests waiting on the room itself (peekers, see Register).
		n.wakeLocked(n.byUser[roomID])
	}
	n.pending = kept
	return deadline, holding
}

// wakeInRoomLocked wakes the waiters of a room whose member list is not
// cached, from the waiting users' room lists (see WithRoomLists): the
// waiters are a tenth of a busy server's users, with a few rooms each,
// where the member list of a room of 5,000 is a query and 5,000 entries
// to hold, and at 10,000 users in the scale curve the notifier's cache
// no longer held those lists (loading them again for the messages' own
// wake-ups was Notifier.flush's share of the CPU). The lists are indexed
// by room when their users register (waitingIn), so a message costs its
// room's waiters, not a walk over every waiter's rooms. A waiter whose
// room list was not held is woken rather than looked up, as for
// presence: its /sync loads the list, finds nothing and waits again.
func (n *Notifier) wakeInRoomLocked(roomID string) {
	for u := range n.waitingIn[roomID] {
		n.wakeLocked(n.byUser[u])
	}
	for u := range n.unlisted {
		n.wakeLocked(n.byUser[u])
	}
	n.wakeLocked(n.byUser[roomID])
}

// indexLocked files a user who starts waiting under the rooms of their
// room list. The list read now is current for every event flushed from
// now on, until a state event that may change it is flushed
// (followRoomListsLocked): the roommate cache hears of each event before
// the notifier does (it subscribes first) and drops the lists the event
// may change, so a list it still holds has all earlier events applied.
func (n *Notifier) indexLocked(user string) {
	if n.roomLists == nil || !strings.HasPrefix(user, "@") {
		return // a peeker's room ID (see Register) is woken by name
	}
	theirs, ok := n.roomLists.CachedJoinedRooms(user)
	if !ok {
		n.unlisted[user] = struct{}{}
		return
	}
	n.listed[user] = theirs
	for _, r := range theirs {
		set, ok := n.waitingIn[r]
		if !ok {
			set = map[string]struct{}{}
			n.waitingIn[r] = set
		}
		set[user] = struct{}{}
	}
}

// unindexLocked forgets a user who no longer waits, or whose list may
// have changed.
func (n *Notifier) unindexLocked(user string) {
	delete(n.unlisted, user)
	for _, r := range n.listed[user] {
		if set := n.waitingIn[r]; set != nil {
			delete(set, user)
			if len(set) == 0 {
				delete(n.waitingIn, r)
			}
		}
	}
	delete(n.listed, user)
}

// followRoomListsLocked keeps the index true to a state event flushed,
// by the roommate cache's rule (presence's roommates.heard): a local
// user's membership event changes that user's rooms alone, and wakes
// that user, who registers again with the list as it is after it; any
// other state event may resolve state and change anyone's membership of
// the room, and every waiting user's list counts as changed.
func (n *Notifier) followRoomListsLocked(ev *rooms.Event) {
	if n.roomLists == nil || ev == nil || ev.StateKey() == nil || len(n.listed) == 0 {
		return
	}
	if ev.Type() == spec.MRoomMember && strings.HasSuffix(ev.Sender(), n.local) {
		if target := *ev.StateKey(); n.listed[target] != nil {
			n.unindexLocked(target)
			n.unlisted[target] = struct{}{}
		}
		return
	}
	for u := range n.listed {
		n.unindexLocked(u)
		n.unlisted[u] = struct{}{}
	}
}

// wakeLocked fires waiters and drops them: a fired waiter is done, and
// its request's Unregister then needs no lock (every member of a room
// finishing at once would queue on it).
func (n *Notifier) wakeLocked(ws map[*Waiter]struct{}) {
	for w := range ws {
		n.fireLocked(ws, w)
	}
}

// fireLocked fires one waiter of the set ws and drops it.
func (n *Notifier) fireLocked(ws map[*Waiter]struct{}, w *Waiter) {
	w.fired.Store(true)
	close(w.C)
	n.dropLocked(ws, w)
}

// dropLocked removes a registered waiter from its user's set ws.
func (n *Notifier) dropLocked(ws map[*Waiter]struct{}, w *Waiter) {
	delete(ws, w)
	if len(ws) == 0 {
		delete(n.byUser, w.user)
		n.unindexLocked(w.user)
	}
	if w.presence {
		if n.presence.waiting[w.user]--; n.presence.waiting[w.user] <= 0 {
			delete(n.presence.waiting, w.user)
		}
	}
}

// loadJoined caches the joined local users of rooms not cached yet,
// querying without the lock. The database's current state can be ahead
// of the notifications still to flush, which only errs towards waking a
// request that then finds nothing new; a membership flushed meanwhile
// was applied to a list cached by whoever flushed it, which a list
// loaded here does not replace.
func (n *Notifier) loadJoined(roomIDs []string) {
	for _, roomID := range roomIDs {
		ids, err := n.members.JoinedMembers(context.Background(), roomID)
		if err != nil {
			continue // joinedLocked wakes everyone instead
		}
		users := map[string]bool{}
		for _, u := range ids {
			if strings.HasSuffix(u, n.local) {
				users[u] = true
			}
		}
		n.mu.Lock()
		if !n.joined.Contains(roomID) {
			n.joined.PutCost(roomID, users, setCost(len(users)))
		}
		n.mu.Unlock()
	}
}

// joinedLocked returns a room's joined local users from the cache, and
// whether it had them (loadJoined puts them there). Without the member
// list it returns every waiting user rather than risk leaving one asleep;
// they recompute and find what is theirs.
func (n *Notifier) joinedLocked(roomID string) (map[string]bool, bool) {
	if users, ok := n.joined.Get(roomID); ok {
		return users, true
	}
	users := map[string]bool{}
	for u := range n.byUser {
		users[u] = true
	}
	return users, false
}

// Register starts waiting for events in the user's rooms or about the
// user; given a room ID instead of a user ID, for the room's events
// (a user peeking into a room they are not in: room and user IDs differ
// in their sigil). Register before looking for changes, so that nothing
// published in between is missed; always Unregister. Presence changes
// do not wake the waiter: see RegisterWithPresence.
func (n *Notifier) Register(user string) *Waiter { return n.register(user, false) }

// RegisterWithPresence is Register for a request that reports presence
// (a /sync whose filter lets m.presence through): the presence changes
// of the user and of those sharing a room with them wake it too. Sliding
// sync and /events have no presence to give, and a woken request that
// finds nothing new costs a whole computation.
func (n *Notifier) RegisterWithPresence(user string) *Waiter { return n.register(user, true) }

func (n *Notifier) register(user string, presence bool) *Waiter {
	w := &Waiter{C: make(chan struct{}), user: user, presence: presence}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.regSeq++
	w.seq = n.regSeq
	set, ok := n.byUser[user]
	if !ok {
		set = map[*Waiter]struct{}{}
		n.byUser[user] = set
		n.indexLocked(user)
	}
	set[w] = struct{}{}
	if presence {
		n.presence.waiting[user]++
	}
	return w
}

// Waiting counts the requests waiting now (a gauge for admins; it takes
// the lock once and is not on any request's path).
func (n *Notifier) Waiting() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	total := 0
	for _, set := range n.byUser {
		total += len(set)
	}
	return total
}

// Wake fires a user's waiters for changes outside the event stream
// (account data, to-device messages, ...).
func (n *Notifier) Wake(user string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.wakeLocked(n.byUser[user])
}

// Unregister stops a waiter.
func (n *Notifier) Unregister(w *Waiter) {
	if w.fired.Load() {
		return // waking dropped it
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if set := n.byUser[w.user]; set != nil {
		if _, ok := set[w]; ok {
			n.dropLocked(set, w)
		}
	}
}

// WakeRoom fires the waiters of a room's joined local users, for changes
// outside the event stream's events (typing, receipts).
func (n *Notifier) WakeRoom(roomID string) {
	n.mu.Lock()
	cached := n.joined.Contains(roomID)
	n.mu.Unlock()
	if !cached {
		n.loadJoined([]string{roomID})
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	users, _ := n.joinedLocked(roomID)
	for u := range users {
		n.wakeLocked(n.byUser[u])
	}
}
