package push

import (
	"context"

	"github.com/myelin-chat/myelin/internal/rooms"
)

// NotifiedNow are the users the worker would notify of ev if it
// evaluated it now, however far behind ev the room has moved: the
// worker's lag made deterministic.
func (s *Service) NotifiedNow(ctx context.Context, ev *rooms.Event) ([]string, error) {
	out, err := s.evaluate(ctx, rooms.Notification{Event: ev})
	var users []string
	for _, n := range out.notes {
		users = append(users, n.UserID)
	}
	return users, err
}
