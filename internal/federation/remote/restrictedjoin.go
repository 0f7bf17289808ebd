package remote

import (
	"context"
	"errors"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
)

// receiveJoinInRoom stores a join another server made for a local user
// of a room this server is already in: a restricted room that no member
// here may vouch for (Synapse's _should_perform_remote_join). The room's
// state here is current, so the join is received as any event of the
// room, not imported over it with the state send_join returned. That
// state (checked by PerformJoin) stands in for the join's prev events
// this server lacks (other joins the resident server accepted): it is
// the state after them.
func (f *Service) receiveJoinInRoom(ctx context.Context, join gomatrixserverlib.PDU, state, chain []gomatrixserverlib.PDU) error {
	ev, err := f.d.Rooms.Receive(ctx, join)
	var missing *rooms.ErrMissingEvents
	if errors.As(err, &missing) && len(missing.Prev) > 0 {
		prevStates := make(map[string][]gomatrixserverlib.PDU, len(missing.Prev))
		for _, id := range missing.Prev {
			prevStates[id] = state
		}
		ev, err = f.d.Rooms.ReceiveWithState(ctx, join, prevStates, chain)
	}
	if err != nil {
		return err
	}
	if ev.Status != roommodel.Accepted {
		return mxerr.Forbidden("The join is not allowed by the room's state on this server")
	}
	return nil
}
