package clientapi

import (
	"context"
	"encoding/json"

	"github.com/myelin-chat/myelin/internal/mxerr"
)

// Guest access (spec "Guest Access"). Which endpoints guests may call is
// each route's AllowGuest; this file holds the rules beyond that.

// guestAccessEvent is the state event that lets guests join a room.
const guestAccessEvent = "m.room.guest_access"

// guestMayJoin allows a guest to join only a room whose current
// m.room.guest_access is can_join (spec "Guest Access", server
// behaviour). A room this server is not in has no state to tell, so
// guests cannot join it, as in Synapse.
func (a *API) guestMayJoin(ctx context.Context, roomID string) error {
	state, err := a.rooms.CurrentState(ctx, roomID)
	if err != nil {
		if _, ok := mxerr.As(err); ok {
			return mxerr.Forbidden("Guest access not allowed")
		}
		return err
	}
	ev, err := a.rooms.StateEvent(ctx, state, guestAccessEvent, "")
	if err != nil {
		return err
	}
	if ev != nil {
		var content struct {
			GuestAccess string `json:"guest_access"`
		}
		if json.Unmarshal(ev.Content(), &content) == nil && content.GuestAccess == "can_join" {
			return nil
		}
	}
	return mxerr.Forbidden("Guest access not allowed")
}
