package clientsync

import (
	"context"
	"encoding/json"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/clientevent"
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
	if m.Membership == spec.Invite && req.ignored[own.Sender()] {
		return nil // invites from ignored users are hidden (spec)
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
	var keys []store.StateKey
	for _, t := range clientevent.StrippedTypes {
		keys = append(keys, store.StateKey{Type: t})
	}
	if own.Sender() != *own.StateKey() {
		// The inviter's membership (a knocker's own is the knock itself).
		keys = append(keys, store.StateKey{Type: spec.MRoomMember, StateKey: own.Sender()})
	}
	found, err := s.engine.StateEvents(ctx, state, keys...)
	if err != nil {
		return err
	}
	stripped := []clientevent.Stripped{}
	for _, k := range keys {
		if ev, ok := found[k]; ok {
			stripped = append(stripped, clientevent.Strip(ev))
		}
	}
	addStripped(resp, m, append(stripped, clientevent.Strip(own)))
	return nil
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
