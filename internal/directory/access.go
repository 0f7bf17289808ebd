package directory

import (
	"context"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/ident"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// Who may see a room's summary (space hierarchy, /room_summary, the
// published directory, federation's /hierarchy): the room half of the
// read rules, as Synapse's RoomSummaryHandler._is_local_room_accessible.
// The event and timeline half is the room engine's (rooms.ReadAccess,
// rooms.Visibility).

// OpenToAll reports whether anyone may see the room's summary: its join
// rule is public, knock or knock_restricted, or its history is
// world-readable.
func (s Summary) OpenToAll() bool {
	switch s.JoinRule {
	case spec.Public, spec.Knock, spec.KnockRestricted:
		return true
	}
	return s.WorldReadable
}

// UserMayView reports whether a user (or, for "", an anonymous caller)
// may see a room's summary: it is open to all; they are joined, invited
// or knocking; or it is restricted to a room they are joined to. A room
// the server's reputation feeds, or the user's own filter, hide only its
// joined members see. It also returns the user's membership.
func (s *Service) UserMayView(ctx context.Context, d *Room, userID string) (string, bool, error) {
	membership := ""
	if userID != "" {
		var err error
		if membership, err = s.rooms.MembershipIn(ctx, d.State, userID); err != nil {
			return "", false, err
		}
	}
	switch {
	case membership == spec.Join:
		return membership, true, nil
	case s.HiddenFor(ctx, userID, d.Summary.RoomID):
		return membership, false, nil
	case membership == spec.Invite || membership == spec.Knock:
		return membership, true, nil
	case d.Summary.OpenToAll():
		return membership, true, nil
	case d.Summary.JoinRule != spec.Restricted || userID == "":
		return membership, false, nil
	}
	for _, id := range d.Summary.AllowedRoomIDs {
		if m, err := s.rooms.MembershipOf(ctx, id, userID); err != nil {
			return "", false, err
		} else if m == spec.Join {
			return membership, true, nil
		}
	}
	return membership, false, nil
}

// ServerMayView reports whether a server may see a room's summary: it is
// open to all; the server has a member joined or invited to it; or it is
// restricted and the server is in one of the allowed rooms. No server
// sees a room the server's reputation feeds hide.
func (s *Service) ServerMayView(ctx context.Context, d *Room, server string) (bool, error) {
	if s.hiddenRoom(ctx, d.Summary.RoomID) {
		return false, nil
	}
	if d.Summary.OpenToAll() {
		return true, nil
	}
	members, err := s.rooms.Members(ctx, d.State)
	if err != nil {
		return false, err
	}
	for _, m := range members {
		if ms, _ := m.Membership(); (ms == spec.Join || ms == spec.Invite) && serverOf(*m.StateKey()) == server {
			return true, nil
		}
	}
	for _, allowed := range d.Summary.AllowedRoomIDs {
		in, err := s.rooms.ServerInRoom(ctx, allowed, server)
		if err != nil {
			if _, ok := mxerr.As(err); ok {
				continue
			}
			return false, err
		}
		if in {
			return true, nil
		}
	}
	return false, nil
}

// serverOf is the server name of a user ID, "" for a malformed one.
func serverOf(userID string) string {
	uid, err := spec.NewUserID(userID, true)
	if err != nil {
		return ""
	}
	return string(uid.Domain())
}

// remoteVisible reports whether a user may see a room this server is not
// in, from another server's summary of it, as Synapse's
// _is_remote_room_accessible: it is open to all; the user is joined to
// one of the rooms it names as allowed; or this server knows the user
// is joined, invited or knocking (an invite it received, say). A
// summary without a join rule is taken as invite-only.
func (s *Spaces) remoteVisible(ctx context.Context, sum Summary, userID string) (bool, error) {
	if s.dir.HiddenFor(ctx, userID, sum.RoomID) {
		return false, nil
	}
	if sum.OpenToAll() {
		return true, nil
	}
	if userID == "" {
		return false, nil
	}
	for _, id := range sum.AllowedRoomIDs {
		if ident.CheckID(id) != nil {
			continue // another server's string; the store cannot hold it
		}
		if m, err := s.dir.rooms.MembershipOf(ctx, id, userID); err != nil {
			return false, err
		} else if m == spec.Join {
			return true, nil
		}
	}
	if ident.CheckID(sum.RoomID) != nil {
		return false, nil
	}
	m, err := s.dir.rooms.MembershipOf(ctx, sum.RoomID, userID)
	return m == spec.Join || m == spec.Invite || m == spec.Knock, err
}
