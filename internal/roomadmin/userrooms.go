package roomadmin

import (
	"context"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
)

// What the admin reads of a user's doings in rooms, and of single
// events (Synapse's sent_invite_count, cumulative_joined_room_count and
// fetch_event, which Ketesa shows).

// SentInviteCount is how many invites the user sent since fromTS.
func (s *Service) SentInviteCount(ctx context.Context, userID string, fromTS int64) (int64, error) {
	return s.o.Store.SentInviteCount(ctx, userID, fromTS)
}

// CumulativeJoinedRooms is how many rooms the user has ever joined.
func (s *Service) CumulativeJoinedRooms(ctx context.Context, userID string) (int64, error) {
	return s.o.Store.CumulativeJoinedRooms(ctx, userID)
}

// Event is any event this server holds, by ID, whatever room it is in
// and whoever may see it: the admin may.
func (s *Service) Event(ctx context.Context, eventID string) (*rooms.Event, error) {
	ev, err := s.o.Rooms.Event(ctx, eventID)
	if err != nil || ev == nil {
		if me, ok := mxerr.As(err); err == nil || ok && me.Code == "M_NOT_FOUND" {
			return nil, mxerr.NotFound("Event not found")
		}
		return nil, err
	}
	return ev, nil
}
