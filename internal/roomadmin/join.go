package roomadmin

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/aliases"
	"github.com/myelin-chat/myelin/internal/membership"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// JoinUser joins a local user to a room (Synapse's POST
// /_synapse/admin/v1/join/{roomIdOrAlias}). In a room this server is
// in, as Synapse, unless the room is public the admin asking first
// invites the user, so the admin must be in the room with the power to
// invite (else 403, the invite's refusal); the user then joins as
// themselves. Unlike Synapse, a user already joined or invited is not
// invited again (Synapse answers 403 for a joined one). A room this
// server is not in is joined over federation through via (the servers
// an alias resolved to, or the request's server_name), as Synapse does:
// there is no invite to send first, so only a room the user may join
// (public, or one they were invited to) is joined. Without federation
// such a room is 404.
func (s *Service) JoinUser(ctx context.Context, admin, roomID, userID string, via []string) error {
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
	if s.o.Federation != nil {
		if in, err := s.o.Rooms.ServerInRoom(ctx, roomID, s.o.ServerName); err != nil || !in {
			s.o.Log.Info("admin: joining a user to a remote room", "room_id", roomID, "user_id", userID, "via", via, "by", admin)
			return s.o.Membership.Join(ctx, userID, roomID, via, nil)
		}
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

// ResolveRoomVia turns a room ID or an alias into a room ID and the
// servers to join it through: another server's alias is asked of that
// server over federation (Synapse's lookup_room_alias); a local alias
// is this server's own.
func (s *Service) ResolveRoomVia(ctx context.Context, idOrAlias string) (string, []string, error) {
	if !strings.HasPrefix(idOrAlias, "#") {
		id, err := s.ResolveRoom(ctx, idOrAlias)
		return id, nil, err
	}
	server, err := aliases.Check(idOrAlias)
	if err != nil {
		return "", nil, err
	}
	if server != s.o.ServerName && s.o.Federation != nil {
		return s.o.Federation.ResolveAlias(ctx, idOrAlias)
	}
	id, err := s.ResolveRoom(ctx, idOrAlias)
	return id, nil, err
}
