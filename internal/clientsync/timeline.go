package clientsync

import (
	"context"
	"slices"

	"github.com/myelin-chat/myelin/internal/rooms"
)

// roomRange is one RoomEvents query.
type roomRange struct {
	roomID      string
	after, upto int64
	limit       int
}

// roomEvents is RoomEvents backwards, shared: the requests woken by one
// event all ask for the same page of the same room, and a range below
// the readable position never changes.
func (s *Service) roomEvents(ctx context.Context, roomID string, after, upto int64, limit int) ([]int64, error) {
	key := roomRange{roomID: roomID, after: after, upto: upto, limit: limit}
	if nids, ok := s.pages.Get(key); ok {
		return nids, nil
	}
	nids, err := s.store.RoomEvents(ctx, roomID, after, upto, limit, true)
	if err != nil {
		return nil, err
	}
	s.pages.PutCost(key, nids, pageCost(key, nids))
	return nids, nil
}

// pagesBytes bounds the timeline pages cache by an estimate of their
// memory. Pages are shared by the requests that one event wakes, which
// ask for them within milliseconds of each other: a small cache serves
// that as well as a big one. Bounded by their total length (65,536
// NIDs) instead, it had held 8 MB of mostly one-NID pages, each one's
// key and entry many times its NIDs, after issue 20's load run.
const pagesBytes = 1 << 20

// pageCost is a page's memory: its NIDs, its key's room ID, and the
// key, entry, list element and map slot around them.
func pageCost(key roomRange, nids []int64) int {
	return 8*cap(nids) + len(key.roomID) + 160
}

// roomPos is a room at a stream position.
type roomPos struct {
	roomID string
	pos    int64
}

// statesBytes bounds the cache of states at positions: as for pages,
// the requests one event wakes ask within milliseconds of each other.
const statesBytes = 256 << 10

// stateAfterAt is StateAfterAtOrBefore, shared: every request one event
// wakes asks for the state at the end of its timeline, at the same
// position of the same room, and what is at or below the readable
// position does not change (but for a completed partial state, see
// forgetStates). A position beyond it is not cached: events may
// still come there.
func (s *Service) stateAfterAt(ctx context.Context, roomID string, pos int64) (int64, error) {
	key := roomPos{roomID: roomID, pos: pos}
	if state, ok := s.states.Get(key); ok {
		return state, nil
	}
	// Asked before the query: a position that became readable during it
	// may have been read before its events were.
	readable := pos <= s.engine.Stream().Current()
	gen := s.statesGen.Load()
	state, err := s.store.StateAfterAtOrBefore(ctx, roomID, pos)
	if err != nil {
		return 0, err
	}
	if readable && s.statesGen.Load() == gen {
		s.states.PutCost(key, state, len(roomID)+cacheEntryOverhead)
	}
	return state, nil
}

// forgetStates drops the cached states of rooms whose partial state
// was completed: completing it may reject events it had accepted
// (rooms.CompletePartialState), below positions already cached.
func (s *Service) forgetStates(roomIDs map[string]bool) {
	if len(roomIDs) > 0 {
		s.statesGen.Add(1)
		s.states.RemoveIf(func(k roomPos, _ int64) bool { return roomIDs[k.roomID] })
	}
}

// roomsWithEvents is the set of rooms with events in (after, upto]. The
// requests woken by one event all ask for the same range, and a range
// below the readable position never changes, so answers are shared.
func (s *Service) roomsWithEvents(ctx context.Context, after, upto int64) (map[string]bool, error) {
	key := [2]int64{after, upto}
	if m, ok := s.active.Get(key); ok {
		return m, nil
	}
	ids, err := s.store.RoomsWithEvents(ctx, after, upto)
	if err != nil {
		return nil, err
	}
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	s.active.PutCost(key, m, setCost(len(m)))
	return m, nil
}

// timeline loads up to limit visible, filtered events of a room in
// (after, upto], oldest first, whether older ones in range were left out,
// whether any event in the range it looked at was dropped (by the filter
// or history visibility), and the position down to which it looked. It looks at no
// more than a bounded number of events (as Synapse gives up after a few
// rounds), so that a long history the user may not see stays cheap: the
// timeline is then limited, and /messages can page on.
func (s *Service) timeline(ctx context.Context, req Request, vis *rooms.Visibility, roomID string, after, upto int64) (tl []*rooms.Event, limited, dropped bool, cursor int64, err error) {
	tf := req.Filter.Room.Timeline
	limit := tf.LimitOr(defaultTimelineLimit, maxTimelineLimit)
	budget := timelineScanFactor*limit + timelineScanExtra
	var out []*rooms.Event
	cursor = upto
	for budget > 0 {
		// Stored rows give only the order; the events come from the cache.
		nids, err := s.roomEvents(ctx, roomID, after, cursor, min(max(limit-len(out)+1, 11), budget))
		if err != nil {
			return nil, false, false, 0, err
		}
		if len(nids) == 0 {
			return reverse(out), false, dropped, cursor, nil
		}
		budget -= len(nids)
		evs, err := s.engine.EventsByNID(ctx, nids)
		if err != nil {
			return nil, false, false, 0, err
		}
		for _, ev := range evs {
			// Ignored users' messages are left out by the visibility check.
			ok := tf.Allows(ev.Type(), ev.Sender(), roomID, ev.HasURL)
			if ok {
				if ok, err = vis.CanSee(ctx, ev); err != nil {
					return nil, false, false, 0, err
				}
			}
			if ok && len(out) == limit {
				return reverse(out), true, dropped, cursor, nil
			}
			if ok {
				out = append(out, ev)
			} else {
				dropped = true
			}
			cursor = ev.StreamPos - 1
		}
	}
	more, err := s.roomEvents(ctx, roomID, after, cursor, 1)
	if err != nil {
		return nil, false, false, 0, err
	}
	return reverse(out), len(more) > 0, dropped, cursor, nil
}

func reverse(evs []*rooms.Event) []*rooms.Event {
	slices.Reverse(evs)
	return evs
}
