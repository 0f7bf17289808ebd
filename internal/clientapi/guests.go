package clientapi

import (
	"context"

	"github.com/myelin-chat/myelin/internal/mxerr"
)

// Guest access (spec "Guest Access"). Which endpoints guests may call is
// each route's AllowGuest; this file holds the rules beyond that.

// guestMayJoin allows a guest to join only a room whose current
// m.room.guest_access is can_join (spec "Guest Access", server
// behaviour); the rule is the engine's, shared with the guests package
// that makes guests leave when it changes.
func (a *API) guestMayJoin(ctx context.Context, roomID string) error {
	ok, err := a.rooms.GuestsMayJoin(ctx, roomID)
	if err != nil {
		return err
	}
	if !ok {
		return mxerr.Forbidden("Guest access not allowed")
	}
	return nil
}
