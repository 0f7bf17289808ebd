package roomadmin

import (
	"context"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
)

// Context is the window of up to limit events around eventID (Synapse's
// admin /context): the client /context's window, read as the admin
// /messages reads, so every accepted event whatever the history
// visibility and the admin's membership. keep filters the timeline and
// the state; lazyMembers keeps only the senders' memberships.
func (s *Service) Context(ctx context.Context, roomID, eventID string, limit int, lazyMembers bool, keep func(*rooms.Event) bool) (*rooms.Window, error) {
	if _, err := s.currentState(ctx, roomID); err != nil {
		return nil, err
	}
	upper := s.o.Rooms.Stream().Current()
	ev, err := s.o.Rooms.Event(ctx, eventID)
	if _, ok := mxerr.As(err); ok {
		return nil, mxerr.NotFound("Event not found")
	}
	if err != nil {
		return nil, err
	}
	if ev == nil || ev.RoomID().String() != roomID || ev.Status != roommodel.Accepted || ev.StreamPos == 0 || ev.StreamPos > upper {
		return nil, mxerr.NotFound("Event not found")
	}
	page := func(ctx context.Context, from int64, n int, backwards bool) ([]*rooms.Event, error) {
		evs, _, _, err := s.o.Rooms.AdminTimeline(ctx, roomID, from, rooms.NoBound, upper, n, backwards, keep)
		return evs, err
	}
	return s.o.Rooms.ContextWindow(ctx, ev, limit, page, lazyMembers, keep)
}
