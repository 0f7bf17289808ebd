package membership

import (
	"context"
	"net/http"

	"github.com/myelin-chat/myelin/internal/mxerr"
)

// refuseBlocked refuses a join, knock or invite of a room a server admin
// blocked (the admin API's block and room deletion), with Synapse's
// answer: 403 M_UNKNOWN "This room has been blocked on this server".
// Leaving, kicking and banning stay possible.
func (s *Service) refuseBlocked(ctx context.Context, roomID string) error {
	_, blocked, err := s.store.RoomBlocked(ctx, roomID)
	if err != nil {
		return err
	}
	if blocked {
		return &mxerr.Error{Status: http.StatusForbidden, Code: "M_UNKNOWN", Message: "This room has been blocked on this server"}
	}
	return nil
}
