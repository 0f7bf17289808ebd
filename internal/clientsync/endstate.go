package clientsync

import (
	"context"
	"errors"
	"maps"

	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// withEndState adds to a room's state section the state at the sync's
// position that neither the state at the timeline's start nor the
// timeline itself gives the client: a state event of a branch that forked
// before the timeline's start, merged by an event the timeline filter
// dropped. Without it the client would never learn that state (Synapse
// issue 16928; its _calculate_state includes the state at the timeline's
// end that the timeline lacks). An entry of evs for a key the end state
// changes gives way to the end's event. startState gives the state at
// the timeline's start, loaded only when the end differs from it.
func (s *Service) withEndState(ctx context.Context, roomID string, upto int64, startState func() (rooms.StateMap, error), tl, evs []*rooms.Event) ([]*rooms.Event, error) {
	if len(tl) == 0 {
		return evs, nil
	}
	lastState, err := s.stateAfterAt(ctx, roomID, upto)
	if errors.Is(err, store.ErrNotFound) {
		return evs, nil
	}
	if err != nil {
		return nil, err
	}
	// The common case: the timeline ends with the room's last event.
	if lastState == tl[len(tl)-1].StateAfter {
		return evs, nil
	}
	cached, err := s.engine.StateAt(ctx, lastState)
	if err != nil {
		return nil, err
	}
	start, err := startState()
	if err != nil {
		return nil, err
	}
	// StateAt's map is the engine's cached copy: not to be changed.
	end := maps.Clone(cached)
	for _, ev := range tl {
		if ev.StateKey() != nil {
			delete(end, ev.Key())
		}
	}
	extra, err := s.stateEvents(ctx, end, start)
	if err != nil || len(extra) == 0 {
		return evs, err
	}
	replaced := map[int64]bool{}
	for _, ev := range extra {
		if nid, ok := start[ev.Key()]; ok {
			replaced[nid] = true
		}
	}
	out := make([]*rooms.Event, 0, len(evs)+len(extra))
	for _, ev := range evs {
		if !replaced[ev.NID] {
			out = append(out, ev)
		}
	}
	return append(out, extra...), nil
}
