package clientsync

import (
	"context"

	"github.com/matrix-org/gomatrixserverlib/spec"

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
