// Package sync serves /sync: it works out what changed for a user since a
// stream token and long-polls until something does.
package sync

import (
	"context"
	"strings"
	gosync "sync"

	"github.com/matrix-org/gomatrixserverlib/spec"

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

	mu      gosync.Mutex
	pending []rooms.Notification
	byUser  map[string]map[*Waiter]struct{}
	// joined caches the joined local users of rooms that had events,
	// loaded on a room's first event and kept current from its membership
	// events.
	joined *cache.LRU[string, map[string]bool]
}

// Members lists a room's joined members.
type Members interface {
	JoinedMembers(ctx context.Context, roomID string) ([]string, error)
	MembershipsOf(ctx context.Context, userID string, memberships ...string) ([]store.RoomMembership, error)
}

// Waiter is one waiting request; C is closed when it should look again.
type Waiter struct {
	C     chan struct{}
	user  string
	fired bool
}

// NewNotifier makes a notifier for the event stream of a server.
func NewNotifier(stream *rooms.StreamGen, members Members, serverName string) *Notifier {
	return &Notifier{stream: stream, members: members, local: ":" + serverName,
		byUser: map[string]map[*Waiter]struct{}{}, joined: cache.NewLRU[string, map[string]bool](200000)}
}

// Publish implements rooms.Bus. A notification is held back until every
// position before it is readable, so that a woken request finds the event.
func (n *Notifier) Publish(not rooms.Notification) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.pending = append(n.pending, not)
	n.flushLocked()
}

// Run flushes held-back notifications whenever the stream advances,
// until ctx ends.
func (n *Notifier) Run(ctx context.Context) {
	for {
		ch := n.stream.Advanced()
		n.mu.Lock()
		n.flushLocked()
		n.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
	}
}

func (n *Notifier) flushLocked() {
	if len(n.pending) == 0 {
		return
	}
	current := n.stream.Current()
	kept := n.pending[:0]
	for _, not := range n.pending {
		if not.Event.StreamPos > current {
			kept = append(kept, not)
			continue
		}
		roomID := not.Event.RoomID().String()
		users := n.joinedLocked(roomID)
		if not.Event.Type() == spec.MRoomMember && not.Event.StateKey() != nil {
			target := *not.Event.StateKey()
			n.wakeLocked(n.byUser[target])
			if strings.HasSuffix(target, n.local) {
				if not.Membership == spec.Join {
					users[target] = true
				} else {
					delete(users, target)
				}
				n.joined.PutCost(roomID, users, len(users)+1)
			}
		}
		for u := range users {
			n.wakeLocked(n.byUser[u])
		}
	}
	n.pending = kept
}

func (n *Notifier) wakeLocked(ws map[*Waiter]struct{}) {
	for w := range ws {
		if !w.fired {
			w.fired = true
			close(w.C)
		}
	}
}

// joinedLocked returns a room's joined local users, loading them on the
// room's first event. The database's current state can be ahead of the
// notification being flushed, which only errs towards waking a request
// that then finds nothing new.
func (n *Notifier) joinedLocked(roomID string) map[string]bool {
	if users, ok := n.joined.Get(roomID); ok {
		return users
	}
	users := map[string]bool{}
	if ids, err := n.members.JoinedMembers(context.Background(), roomID); err == nil {
		for _, u := range ids {
			if strings.HasSuffix(u, n.local) {
				users[u] = true
			}
		}
	} else {
		// Without the member list, wake every waiting request rather than
		// risk leaving one asleep; they recompute and find what is theirs.
		for u := range n.byUser {
			users[u] = true
		}
		return users
	}
	n.joined.PutCost(roomID, users, len(users)+1)
	return users
}

// Register starts waiting for events in the user's rooms or about the
// user. Register before looking for changes, so that nothing published in
// between is missed; always Unregister.
func (n *Notifier) Register(user string) *Waiter {
	w := &Waiter{C: make(chan struct{}), user: user}
	n.mu.Lock()
	defer n.mu.Unlock()
	set, ok := n.byUser[user]
	if !ok {
		set = map[*Waiter]struct{}{}
		n.byUser[user] = set
	}
	set[w] = struct{}{}
	return w
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
	n.mu.Lock()
	defer n.mu.Unlock()
	if set, ok := n.byUser[w.user]; ok {
		delete(set, w)
		if len(set) == 0 {
			delete(n.byUser, w.user)
		}
	}
}

// WakeRoom fires the waiters of a room's joined local users, for changes
// outside the event stream's events (typing, receipts).
func (n *Notifier) WakeRoom(roomID string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for u := range n.joinedLocked(roomID) {
		n.wakeLocked(n.byUser[u])
	}
}

// WakeRoommates fires the waiters of the local users who share a room
// with a user, and the user's own (presence changes).
func (n *Notifier) WakeRoommates(userID string) {
	rooms, err := n.members.MembershipsOf(context.Background(), userID, spec.Join)
	n.mu.Lock()
	defer n.mu.Unlock()
	n.wakeLocked(n.byUser[userID])
	if err != nil {
		return
	}
	for _, r := range rooms {
		for u := range n.joinedLocked(r.RoomID) {
			n.wakeLocked(n.byUser[u])
		}
	}
}
