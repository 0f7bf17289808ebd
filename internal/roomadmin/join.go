package roomadmin

import (
	"context"
	"encoding/json"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/membership"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// JoinUser joins a local user to a room this server is in (Synapse's POST
// /_synapse/admin/v1/join/{roomIdOrAlias}). As Synapse, unless the room
// is public the admin asking first invites the user, so the admin must
// be in the room with the power to invite (else 403, the invite's
// refusal); the user then joins as themselves. Unlike Synapse, a user
// already joined or invited is not invited again (Synapse answers 403
// for a joined one). Rooms this server is not in are 404: Synapse would
// try to join them over federation through the servers the request
// names, which Myelin's admin API does not do.
func (s *Service) JoinUser(ctx context.Context, admin, roomID, userID string) error {
	lp, local := s.o.Accounts.LocalpartOf(userID)
	if !local {
		return mxerr.InvalidParam("This endpoint can only be used with local users")
	}
	if _, err := s.o.Accounts.User(ctx, lp); err != nil {
		if me, ok := mxerr.As(err); ok && me.Code == "M_NOT_FOUND" {
			return mxerr.NotFound("User not found")
		}
		return err
	}
	state, err := s.currentState(ctx, roomID)
	if err != nil {
		return err
	}
	m, err := s.o.Rooms.MembershipIn(ctx, state, userID)
	if err != nil {
		return err
	}
	public := false
	if jr, err := s.o.Rooms.StateEvent(ctx, state, spec.MRoomJoinRules, ""); err == nil && jr != nil {
		var c struct {
			JoinRule string `json:"join_rule"`
		}
		public = json.Unmarshal(jr.Content(), &c) == nil && c.JoinRule == spec.Public
	}
	if !public && m != spec.Join && m != spec.Invite {
		if err := s.o.Membership.Invite(ctx, membership.InviteRequest{Sender: admin, RoomID: roomID, Target: userID}); err != nil {
			return err
		}
	}
	s.o.Log.Info("admin: joining a user to a room", "room_id", roomID, "user_id", userID, "by", admin)
	return s.o.Membership.Join(ctx, userID, roomID, nil, nil)
}
