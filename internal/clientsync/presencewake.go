package clientsync

import (
	"context"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"
)

// PresenceWakeInterval is how often at most a busy server wakes the
// long-polls of a presence change's roommates: changes heard of within
// it of the last batch wait for its end, and go together.
//
// A presence change wakes every local user sharing a room with its
// user, as Synapse's notifier does (rooms of up to thousands of members),
// and the woken /sync answers with nothing but that presence. With many
// users coming online the server answered each long-poll that often: in
// the scale curve (docs/benchmarks.md, "Presence wake-ups coalesced")
// 97 % of the long-poll returns carried only presence, 44 of them per
// message at 1,000 users, 75 at 10,000. Coalesced, a poller returns for
// presence at most once an interval however many of its roommates
// change, and a change still arrives within it; anything else (an
// event, a receipt, typing, account data, the user's own presence)
// wakes at once, and its answer carries the presence changed so far.
// Presence itself moves in steps of a minute (LastActiveGranularity) and
// times out in 30 s at the earliest, so a second's delay is below what
// a client shows.
const PresenceWakeInterval = time.Second

// presenceWakes are the roommates' presence wake-ups waiting for the
// next batch, guarded by the notifier's lock.
type presenceWakes struct {
	every time.Duration
	// pending maps a local user to the registration seq of the latest
	// change they were due to hear of: their waiters registered up to
	// it are woken; a later one's request read the stream after that
	// change was readable, and found it.
	pending map[string]uint64
	// next is when the next batch may go: a change heard of after it
	// goes at once (a quiet server adds no delay), and starts a new
	// interval.
	next time.Time
	// waiting counts each user's waiters that report presence.
	waiting map[string]int
}

// WithPresenceWakeInterval sets how often at most roommates are woken for
// presence changes (PresenceWakeInterval by default; 0 wakes at once).
func WithPresenceWakeInterval(d time.Duration) NotifierOption {
	return func(n *Notifier) { n.presence.every = max(d, 0) }
}

// WakeRoommates hears that a user's presence changed (the change is
// readable). The user's own waiters are woken at once; the waiters of
// the local users who share a room with them, in the next batch (see
// PresenceWakeInterval). Only waiters of requests that report presence
// are woken.
func (n *Notifier) WakeRoommates(userID string) {
	if n.roomLists != nil {
		n.wakeRoommatesByRooms(userID)
		return
	}
	rooms, err := n.members.MembershipsOf(context.Background(), userID, spec.Join)
	var missing []string
	n.mu.Lock()
	for _, r := range rooms {
		if !n.joined.Contains(r.RoomID) {
			missing = append(missing, r.RoomID)
		}
	}
	n.mu.Unlock()
	n.loadJoined(missing)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.wakePresenceLocked(userID, n.regSeq)
	if err != nil {
		return
	}
	seq := n.regSeq
	// The roommates to wake are the users both waiting and in one of
	// the rooms: look from the smaller side. In rooms of thousands
	// of members most are not waiting.
	members := make([]map[string]bool, 0, len(rooms))
	total := 0
	for _, r := range rooms {
		users, _ := n.joinedLocked(r.RoomID)
		members = append(members, users)
		total += len(users)
	}
	if len(n.presence.waiting) < total {
		for u := range n.presence.waiting {
			for _, users := range members {
				if users[u] {
					n.presence.pending[u] = seq
					break
				}
			}
		}
	} else {
		for _, users := range members {
			for u := range users {
				if n.presence.waiting[u] > 0 {
					n.presence.pending[u] = seq
				}
			}
		}
	}
	n.schedulePresenceLocked()
}

// wakeRoommatesByRooms is WakeRoommates with users' room lists (see
// WithRoomLists): the waiting users, a tenth of a busy server's, whose
// rooms meet the changed user's. The rooms' member lists, the other
// way, are thousands of users each for the rooms that matter, and at
// 10,000 users in the scale curve the notifier's cache of them no longer
// held the rooms of 5,000 members; loading them again on presence
// changes cost 12 % of the server's CPU.
func (n *Notifier) wakeRoommatesByRooms(userID string) {
	rooms, err := n.roomLists.JoinedRooms(context.Background(), userID)
	n.mu.Lock()
	n.wakePresenceLocked(userID, n.regSeq)
	seq := n.regSeq
	if err != nil || len(rooms) == 0 {
		n.mu.Unlock()
		return
	}
	waiting := make([]string, 0, len(n.presence.waiting))
	for u := range n.presence.waiting {
		waiting = append(waiting, u)
	}
	n.mu.Unlock()
	// Read without the lock: one who starts waiting meanwhile registers
	// after seq and has read the change already.
	changed := make(map[string]struct{}, len(rooms))
	for _, r := range rooms {
		changed[r] = struct{}{}
	}
	var mates []string
	for _, u := range waiting {
		theirs, ok := n.roomLists.CachedJoinedRooms(u)
		if !ok {
			// Woken rather than looked up: this runs in the request
			// whose activity changed presence, and after the lists were
			// dropped (a state event may change anyone's rooms) it would
			// ask the database for every waiter. The woken /sync loads
			// its user's rooms for its own roommate check, and waits
			// again if nothing concerns it.
			mates = append(mates, u)
			continue
		}
		for _, r := range theirs {
			if _, ok := changed[r]; ok {
				mates = append(mates, u)
				break
			}
		}
	}
	if len(mates) == 0 {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, u := range mates {
		n.presence.pending[u] = max(n.presence.pending[u], seq)
	}
	n.schedulePresenceLocked()
}

// schedulePresenceLocked wakes the pending roommates now if no batch went
// within the interval, or has Run wake them at its end.
func (n *Notifier) schedulePresenceLocked() {
	if len(n.presence.pending) == 0 {
		return
	}
	if now := time.Now(); !now.Before(n.presence.next) {
		n.flushPresenceLocked(now)
		return
	}
	// Run sets its timer for the batch.
	select {
	case n.heldBack <- struct{}{}:
	default:
	}
}

// RoomLists are users' joined rooms, held in memory (presence's roommate
// cache, which woken /syncs read for their roommate checks).
type RoomLists interface {
	// JoinedRooms lists a user's rooms, loading them on a miss.
	JoinedRooms(ctx context.Context, userID string) ([]string, error)
	// CachedJoinedRooms lists them only when held (ok false otherwise).
	CachedJoinedRooms(userID string) ([]string, bool)
}

// WithRoomLists has WakeRoommates find the roommates to wake from users'
// joined rooms rather than from the rooms' member lists, and an event's
// wake-up too when its room's member list is not cached.
func WithRoomLists(l RoomLists) NotifierOption {
	return func(n *Notifier) { n.roomLists = l }
}

// flushPresence wakes the pending roommates if their batch is due; it
// returns when the batch is due otherwise.
func (n *Notifier) flushPresence(now time.Time) (due time.Time, pending bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.presence.pending) == 0 {
		return time.Time{}, false
	}
	if now.Before(n.presence.next) {
		return n.presence.next, true
	}
	n.flushPresenceLocked(now)
	return time.Time{}, false
}

func (n *Notifier) flushPresenceLocked(now time.Time) {
	for u, seq := range n.presence.pending {
		n.wakePresenceLocked(u, seq)
	}
	clear(n.presence.pending)
	n.presence.next = now.Add(n.presence.every)
}

// wakePresenceLocked fires a user's waiters that report presence and
// were registered up to seq.
func (n *Notifier) wakePresenceLocked(user string, seq uint64) {
	ws := n.byUser[user]
	for w := range ws {
		if w.presence && w.seq <= seq {
			n.fireLocked(ws, w)
		}
	}
}
