package membership

import (
	"context"

	"github.com/myelin-chat/myelin/internal/mxerr"
)

// JoinScreen answers whether the server's reputation feeds keep local
// users out of a room (issue 16 item 5; reputation.Points.RefusesJoin):
// the room is listed, or the server its ID names, or, for a room joined
// through other servers, every one of them (via).
type JoinScreen interface {
	RefusesJoin(ctx context.Context, userID, roomID string, via []string) (reason string, refused bool)
}

// refuseListedRoom is the one check before a local user joins or knocks
// (whatever the path: /join, an invite accepted, a restricted join
// through another server): 403 M_FORBIDDEN that says why, so that the
// user is told rather than left guessing. The via servers count only
// when the join goes through them (remote): no one here is in the room.
func (s *Service) refuseListedRoom(ctx context.Context, userID, roomID string, remote bool, via []string) error {
	if s.reputation == nil {
		return nil
	}
	if !remote {
		via = nil
	}
	reason, refused := s.reputation.RefusesJoin(ctx, userID, roomID, via)
	if !refused {
		return nil
	}
	if reason == "" {
		reason = "no reason given"
	}
	return mxerr.Forbidden("This room is blocked by a reputation feed: %s", reason)
}
