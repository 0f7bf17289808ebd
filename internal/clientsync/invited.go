package clientsync

import (
	"context"
	"encoding/json"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/clientevent"
	"github.com/myelin-chat/myelin/internal/membership"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// strippedRoom adds an invite or knock entry with the stripped state the
// user is allowed to see before joining.
func (s *Service) strippedRoom(ctx context.Context, req Request, resp *Response, m store.RoomMembership) error {
	evs, err := s.engine.EventsByNID(ctx, []int64{m.EventNID})
	if err != nil || len(evs) == 0 {
		return err
	}
	own := evs[0]
	if m.Membership == spec.Invite {
		if shown, err := s.inviteShown(ctx, req, own); err != nil || !shown {
			return err
		}
	}
	if own.StateBefore == 0 {
		// An invite or knock of a room no one here is in: the stripped
		// state came with it from the room's server.
		addStripped(resp, m, append(outOfBandState(own), clientevent.Strip(own)))
		return nil
	}
	state, err := s.engine.StateAt(ctx, own.StateBefore)
	if err != nil {
		return err
	}
	inviter := ""
	if own.Sender() != *own.StateKey() {
		// The inviter's membership (a knocker's own is the knock itself).
		inviter = own.Sender()
	}
	stripped, err := membership.StrippedState(ctx, s.engine, state, inviter)
	if err != nil {
		return err
	}
	addStripped(resp, m, append(stripped, clientevent.Strip(own)))
	return nil
}

// inviteShown reports whether an invite event may be served to its user
// over a sync endpoint: not from an ignored user (spec), not one the
// user's own reputation filter hides, not one their invite permission
// ignores or blocks (spec v1.18 "Invite permission", MSC4155).
func (s *Service) inviteShown(ctx context.Context, req Request, invite *rooms.Event) (bool, error) {
	if req.ignored[invite.Sender()] {
		return false, nil
	}
	if !rooms.ShowFiltered(ctx) && s.engine.InviteFilteredFor(ctx, req.UserID, invite) != nil {
		return false, nil
	}
	return req.invites.shows(ctx, invite.Sender())
}

func addStripped(resp *Response, m store.RoomMembership, stripped []clientevent.Stripped) {
	if m.Membership == spec.Invite {
		resp.Rooms.Invite[m.RoomID] = &StrippedRoom{InviteState: &EventList[clientevent.Stripped]{Events: stripped}}
	} else {
		resp.Rooms.Knock[m.RoomID] = &StrippedRoom{KnockState: &EventList[clientevent.Stripped]{Events: stripped}}
	}
}

// outOfBandState is the stripped state another server sent with an
// invite (invite_room_state) or a knock's answer (knock_room_state),
// kept in the event's unsigned section; the event itself is left out.
func outOfBandState(ev *rooms.Event) []clientevent.Stripped {
	var u struct {
		Unsigned struct {
			Invite []clientevent.Stripped `json:"invite_room_state"`
			Knock  []clientevent.Stripped `json:"knock_room_state"`
		} `json:"unsigned"`
	}
	_ = json.Unmarshal(ev.JSON(), &u)
	out := []clientevent.Stripped{}
	for _, st := range append(u.Unsigned.Invite, u.Unsigned.Knock...) {
		if st.Type == spec.MRoomMember && st.StateKey == *ev.StateKey() {
			continue
		}
		out = append(out, st)
	}
	return out
}

// invitePermission is a /sync request's view of its user's invite
// permission, loaded once, on the first invite the response would carry.
type invitePermission struct {
	rules  *membership.InviteRules
	userID string
	loaded bool
	perm   membership.InvitePermission
}

// shows reports whether an invite from inviter may be shown.
func (p *invitePermission) shows(ctx context.Context, inviter string) (bool, error) {
	if p == nil || p.rules == nil {
		return true, nil
	}
	if !p.loaded {
		perm, err := p.rules.Permission(ctx, p.userID)
		if err != nil {
			return false, err
		}
		p.perm, p.loaded = perm, true
	}
	return p.perm.Decide(inviter) == membership.InviteAllowed, nil
}
