package federation

import (
	"context"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
)

// receiveJoinInRoom stores a join another server made for a local user
// of a room this server is already in: a restricted room that no member
// here may vouch for (Synapse's _should_perform_remote_join). The room's
// state here is current, so the join is received as any event of the
// room, not imported over it with the state send_join returned; prev
// events this server lacks (other joins the resident server accepted)
// are filled in from it, as for any event it sends.
func (a *API) receiveJoinInRoom(ctx context.Context, server string, join gomatrixserverlib.PDU) error {
	v, err := supportedVersion(join.Version())
	if err != nil {
		return err
	}
	ev, err := a.receiveOrResolve(ctx, server, v, join)
	if err != nil {
		return err
	}
	if ev.Status != roommodel.Accepted {
		return mxerr.Forbidden("The join is not allowed by the room's state on this server")
	}
	return nil
}
