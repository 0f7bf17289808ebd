package remote

import (
	"context"
	"log/slog"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/rooms"
)

// joinWorker hears of new joins on the bus and hands each to handle in
// Run, off the engine's write path: what JoinPresence and
// JoinDeviceLists share. When its queue is full (a burst of joins) a
// join is skipped rather than the engine held up; both are best effort
// and catch up with the user's next change.
type joinWorker struct {
	what   string
	log    *slog.Logger
	queue  chan rooms.Notification
	handle func(ctx context.Context, roomID, userID string) error
}

// newJoinWorker subscribes, under name, a worker that calls handle for
// each new join.
func newJoinWorker(b bus.Bus, name, what string, log *slog.Logger, handle func(ctx context.Context, roomID, userID string) error) *joinWorker {
	w := &joinWorker{what: what, log: log, queue: make(chan rooms.Notification, 1000), handle: handle}
	b.Subscribe(name, func(_ context.Context, c bus.Change) { w.Publish(c.(rooms.Notification)) }, rooms.TopicEvent)
	return w
}

// Publish hears of a new event (rooms.TopicEvent).
func (w *joinWorker) Publish(n rooms.Notification) {
	if n.Membership != spec.Join || n.PrevMembership == spec.Join || n.Event.StateKey() == nil || n.Event.StreamPos <= 0 {
		return // not a join, a profile change, or history
	}
	select {
	case w.queue <- n:
	default:
		w.log.Info(w.what+" for a join skipped: queue full", "room", n.Event.RoomID().String())
	}
}

// Run handles queued joins until ctx ends.
func (w *joinWorker) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case n := <-w.queue:
			if err := w.handle(ctx, n.Event.RoomID().String(), *n.Event.StateKey()); err != nil && ctx.Err() == nil {
				w.log.Info(w.what+" for a join", "err", err)
			}
		}
	}
}
