package membership

import (
	"context"
	"slices"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
)

// joinThroughAuthoriser handles a local join of a restricted room this
// server is in but cannot vouch for: it is in none of the allowed rooms
// (M_UNABLE_TO_AUTHORISE_JOIN) or has no member who may invite
// (M_UNABLE_TO_GRANT_JOIN). As Synapse's _should_perform_remote_join,
// the join is then made through another server of the room, the
// client's via first, then the servers with a member who may invite.
// Any other refusal is final, and so are these when there is no other
// server to ask: the client is then told M_FORBIDDEN, as by Synapse's
// check_restricted_join_rules, since the M_UNABLE codes are meant for
// joining servers.
func (s *Service) joinThroughAuthoriser(ctx context.Context, userID, roomID string, via []string, content map[string]any, localErr error) error {
	me, ok := mxerr.As(localErr)
	if !ok || (me.Code != rooms.CodeUnableToAuthorise && me.Code != rooms.CodeUnableToGrant) {
		return localErr
	}
	var servers []string
	if s.remote != nil {
		var err error
		if servers, err = s.rooms.AuthorisingServers(ctx, roomID); err != nil {
			return err
		}
	}
	if s.remote == nil || len(via)+len(servers) == 0 {
		return mxerr.Forbidden("%s", me.Message)
	}
	return s.remote.Join(ctx, userID, roomID, append(slices.Clone(via), servers...), content)
}
