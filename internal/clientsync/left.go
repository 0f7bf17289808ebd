package clientsync

import (
	"context"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/clientevent"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// leftRoom adds a "leave" entry: the timeline from the token up to the
// leave, and its state (the whole state at the start of the timeline when
// full, or for initial syncs). A user whose membership before leaving was
// not join (a rejected invite, a withdrawn knock) was never shown the
// room's state and gets none now.
func (s *Service) leftRoom(ctx context.Context, req Request, resp *Response, vis *rooms.Visibility, m store.RoomMembership, after int64, full bool) error {
	evs, err := s.engine.EventsByNID(ctx, []int64{m.EventNID})
	if err != nil || len(evs) == 0 {
		return err
	}
	leave := evs[0]
	if outOfBand(leave) {
		return s.outOfBandLeave(ctx, req, resp, m.RoomID, leave)
	}
	mode := stateDelta
	if full || after == 0 {
		mode = stateFull
	}
	before := ""
	if leave.ReplacesNID != 0 {
		prev, err := s.engine.EventsByNID(ctx, []int64{leave.ReplacesNID})
		if err != nil {
			return err
		}
		if len(prev) > 0 {
			before, _ = prev[0].Membership()
		}
	}
	if before != spec.Join {
		mode = stateNone
	}
	j, err := s.joinedRoom(ctx, req, vis, m.RoomID, min(after, leave.StreamPos), leave.StreamPos, mode)
	if err != nil {
		return err
	}
	resp.Rooms.Leave[m.RoomID] = &LeftRoom{State: j.State, StateAfter: j.StateAfter, Timeline: j.Timeline}
	return nil
}

// outOfBandLeave is the entry of a room this server is not in that the
// user left without being in it (an invite rejected or rescinded, a knock
// withdrawn): no room here to read a timeline or state from, so the
// timeline is the leave itself, as Synapse sends it, for the client to
// see the membership end.
func (s *Service) outOfBandLeave(ctx context.Context, req Request, resp *Response, roomID string, leave *rooms.Event) error {
	room := &LeftRoom{State: EventList[clientevent.Event]{Events: []clientevent.Event{}}, Timeline: Timeline{Events: []clientevent.Event{}}}
	room.Timeline.PrevBatch = Token{Events: leave.StreamPos}.String()
	if req.Filter.Room.Timeline.Allows(leave.Type(), leave.Sender(), roomID, leave.HasURL) {
		evs, err := s.render.Render(ctx, []*rooms.Event{leave}, req.Viewer, req.UserID, true)
		if err != nil {
			return err
		}
		room.Timeline.Events = evs
	}
	resp.Rooms.Leave[roomID] = room
	return nil
}
