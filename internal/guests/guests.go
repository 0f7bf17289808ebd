// Package guests enforces the server side of guest access (spec "Guest
// Access"): when a room stops allowing guests, its guests leave.
package guests

import (
	"context"
	"log/slog"
	"sync"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/rooms"
)

// Store lists a room's joined guests.
type Store interface {
	JoinedGuests(ctx context.Context, roomID string) ([]string, error)
}

// Enforcer makes guests leave rooms whose m.room.guest_access no longer
// says can_join: the spec's MUST, done as Synapse does, each guest
// leaving on their own behalf.
type Enforcer struct {
	store Store
	rooms *rooms.Engine
	log   *slog.Logger

	mu      sync.Mutex
	pending map[string]bool
	wake    chan struct{}
}

// New makes the enforcer; subscribe it to the engine's bus and Run it.
//
// It hears of new events on b.
func New(s Store, engine *rooms.Engine, log *slog.Logger, b bus.Bus) *Enforcer {
	g := &Enforcer{store: s, rooms: engine, log: log, pending: map[string]bool{}, wake: make(chan struct{}, 1)}
	b.Subscribe("guests", func(_ context.Context, c bus.Change) { g.Publish(c.(rooms.Notification)) }, rooms.TopicEvent)
	return g
}

// Publish hears of a new event (rooms.TopicEvent). The engine publishes while a room may
// still be busy, so the leaves are made later, by Run.
func (g *Enforcer) Publish(n rooms.Notification) {
	ev := n.Event
	if ev.Type() != rooms.GuestAccessEvent || ev.StateKey() == nil || *ev.StateKey() != "" || rooms.GuestsCanJoin(ev.Content()) {
		return
	}
	g.mu.Lock()
	g.pending[ev.RoomID().String()] = true
	g.mu.Unlock()
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// Run makes the pending leaves until ctx ends.
func (g *Enforcer) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-g.wake:
		}
		g.mu.Lock()
		roomIDs := g.pending
		g.pending = map[string]bool{}
		g.mu.Unlock()
		for roomID := range roomIDs {
			if err := g.evict(ctx, roomID); err != nil && ctx.Err() == nil {
				g.log.Warn("guests: removing guests from a room", "room_id", roomID, "err", err)
			}
		}
	}
}

// evict makes the room's guests leave if its current state still
// refuses guests (a later event may have allowed them again).
func (g *Enforcer) evict(ctx context.Context, roomID string) error {
	if ok, err := g.rooms.GuestsMayJoin(ctx, roomID); err != nil || ok {
		return err
	}
	guests, err := g.store.JoinedGuests(ctx, roomID)
	if err != nil {
		return err
	}
	for _, u := range guests {
		if _, err := g.rooms.SetMembership(ctx, rooms.MembershipRequest{Sender: u, RoomID: roomID, Target: u, Membership: spec.Leave}); err != nil {
			return err
		}
	}
	return nil
}
