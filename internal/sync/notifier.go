// Package sync serves /sync: it works out what changed for a user since a
// stream token and long-polls until something does.
package sync

import (
	"context"
	gosync "sync"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/rooms"
)

// Notifier wakes waiting /sync requests when an event in one of their
// rooms, or about their user, becomes readable. It is the engine's bus
// listener.
type Notifier struct {
	stream *rooms.StreamGen

	mu      gosync.Mutex
	pending []rooms.Notification
	byRoom  map[string]map[*Waiter]struct{}
	byUser  map[string]map[*Waiter]struct{}
}

// Waiter is one waiting request; C is closed when it should look again.
type Waiter struct {
	C     chan struct{}
	user  string
	rooms []string
	fired bool
}

// NewNotifier makes a notifier for the event stream.
func NewNotifier(stream *rooms.StreamGen) *Notifier {
	return &Notifier{stream: stream, byRoom: map[string]map[*Waiter]struct{}{}, byUser: map[string]map[*Waiter]struct{}{}}
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
		n.wakeLocked(n.byRoom[not.Event.RoomID().String()])
		if not.Event.Type() == spec.MRoomMember && not.Event.StateKey() != nil {
			n.wakeLocked(n.byUser[*not.Event.StateKey()])
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

// Register starts waiting for events in rooms or about user. Register
// before looking for changes, so that nothing published in between is
// missed; always Unregister.
func (n *Notifier) Register(user string, roomIDs []string) *Waiter {
	w := &Waiter{C: make(chan struct{}), user: user, rooms: roomIDs}
	n.mu.Lock()
	defer n.mu.Unlock()
	add := func(m map[string]map[*Waiter]struct{}, key string) {
		set, ok := m[key]
		if !ok {
			set = map[*Waiter]struct{}{}
			m[key] = set
		}
		set[w] = struct{}{}
	}
	add(n.byUser, user)
	for _, r := range roomIDs {
		add(n.byRoom, r)
	}
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
	remove := func(m map[string]map[*Waiter]struct{}, key string) {
		if set, ok := m[key]; ok {
			delete(set, w)
			if len(set) == 0 {
				delete(m, key)
			}
		}
	}
	remove(n.byUser, w.user)
	for _, r := range w.rooms {
		remove(n.byRoom, r)
	}
}
