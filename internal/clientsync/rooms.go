package clientsync

import (
	"context"
	"errors"
	"slices"
	"sort"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/clientevent"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
	"github.com/myelin-chat/myelin/internal/store"
)

// stateAt is a room's state at a stream position (empty before the room).
func (s *Service) stateAt(ctx context.Context, roomID string, pos int64) (rooms.StateMap, error) {
	return s.stateFrom(ctx, roomID, pos, s.stateAfterAt)
}

// stateFrom is a room's state at a stream position, whose snapshot
// stateAfter finds.
func (s *Service) stateFrom(ctx context.Context, roomID string, pos int64, stateAfter func(context.Context, string, int64) (int64, error)) (rooms.StateMap, error) {
	state, err := stateAfter(ctx, roomID, pos)
	if errors.Is(err, store.ErrNotFound) {
		return rooms.StateMap{}, nil
	}
	if err != nil {
		return nil, err
	}
	return s.engine.StateAt(ctx, state)
}

// stateMode says what the state section of a room carries.
type stateMode int

const (
	// stateDelta: the state that changed between the token and the start
	// of the timeline (nothing, for a timeline that covers the whole range
	// unfiltered).
	stateDelta stateMode = iota
	// stateFull: the whole state at the start of the timeline.
	stateFull
	// stateNone: nothing, for rooms the user was never joined to.
	stateNone
)

// joinedRoom builds a room's entry from its timeline in (after, upto]
// and the state the mode asks for.
func (s *Service) joinedRoom(ctx context.Context, req Request, vis *rooms.Visibility, roomID string, after, upto int64, mode stateMode) (*JoinedRoom, error) {
	tl, limited, dropped, cursor, err := s.timeline(ctx, req, vis, roomID, after, upto)
	if err != nil {
		return nil, err
	}
	// Memberships received while this server was not in the room (an
	// invite from another server: rooms.Engine.ReceiveOutOfBand) have a
	// stream position but no room state; the state before the first
	// timeline event would be empty and the client would never get the
	// room's state. The join that follows carries it, so the timeline
	// starts there (Synapse keeps such events as outliers, out of it).
	for len(tl) > 0 && outOfBand(tl[0]) {
		tl = tl[1:]
	}
	if !limited {
		if limited, err = s.acrossGap(ctx, tl); err != nil {
			return nil, err
		}
	}
	room := newJoinedRoom()
	for _, ev := range tl {
		if m, _ := ev.Membership(); m == spec.Join && ev.Type() == spec.MRoomMember && *ev.StateKey() != req.UserID {
			room.joiners = append(room.joiners, *ev.StateKey())
		}
	}
	room.Timeline.Limited = limited
	room.Timeline.PrevBatch = Token{Events: upto}.String()
	if limited {
		room.Timeline.PrevBatch = Token{Events: cursor}.String()
	}
	if len(tl) > 0 {
		room.Timeline.PrevBatch = Token{Events: tl[0].StreamPos - 1}.String()
	}
	var stateEvs []*rooms.Event
	if req.UseStateAfter {
		stateEvs, err = s.stateAfter(ctx, req, roomID, after, upto, tl, mode)
	} else {
		stateEvs, err = s.stateBefore(ctx, req, roomID, after, upto, tl, mode, limited || dropped)
	}
	if err != nil {
		return nil, err
	}
	viewer := req.Viewer
	rendered, err := s.render.RenderState(ctx, stateEvs, viewer, req.UserID, true)
	if err != nil {
		return nil, err
	}
	if req.UseStateAfter {
		room.StateAfter = &EventList[clientevent.Event]{Events: rendered}
	} else {
		room.State.Events = rendered
	}
	if room.Timeline.Events, err = s.render.Render(ctx, tl, viewer, req.UserID, true); err != nil {
		return nil, err
	}
	if summaryMayChange(req, mode, tl, stateEvs, limited || dropped) {
		if room.Summary, err = s.summary(ctx, roomID, req.UserID); err != nil {
			return nil, err
		}
	}
	return room, nil
}

// summaryMayChange reports whether a room's entry carries its summary,
// which, omitted, the spec lets a client read as unchanged. Like Synapse
// (sync.py, _generate_room_entry): with full state, when a membership
// is in the timeline, or when a gap may have hidden one and membership
// is in the state. With lazy-loaded members a sender's member event is
// in the state of nearly every sync and says nothing of a change
// (Synapse calls them false positives), so it alone does not count; yet
// it made each woken long-poll count the members of rooms of thousands.
func summaryMayChange(req Request, mode stateMode, tl, state []*rooms.Event, gap bool) bool {
	if mode == stateFull || hasMembers(tl) {
		return true
	}
	if req.Filter.Room.State.LazyLoadMembers {
		return gap && hasMembers(state)
	}
	return hasMembers(state)
}

// stateBefore is the state section: the state at the start of the
// timeline, whole or as changes since the token, which a gap (limited or
// dropped events) makes necessary.
func (s *Service) stateBefore(ctx context.Context, req Request, roomID string, after, upto int64, tl []*rooms.Event, mode stateMode, gap bool) ([]*rooms.Event, error) {
	// The state at the start of the timeline is loaded whole only for
	// what needs all of it: full state, a gap's changes, a timeline
	// that does not end at the sync's state (withEndState). A woken
	// incremental sync has none of these, and with lazy-loaded members
	// needs only its senders' memberships (addSenders), read key by key
	// from the engine: the whole state of a room of 5,000 members, built
	// for each woken /sync when the engine's state cache no longer held
	// it, was 6 % of the server's CPU at 10,000 users.
	var start rooms.StateMap
	whole := func() (rooms.StateMap, error) {
		if start != nil {
			return start, nil
		}
		var err error
		if len(tl) > 0 {
			start, err = s.engine.StateAt(ctx, tl[0].StateBefore)
		} else {
			start, err = s.stateAt(ctx, roomID, upto)
		}
		return start, err
	}
	var stateEvs []*rooms.Event
	switch mode {
	case stateFull:
		st, err := whole()
		if err != nil {
			return nil, err
		}
		if stateEvs, err = s.stateEvents(ctx, st, nil); err != nil {
			return nil, err
		}
	case stateDelta:
		// When every event since the token is in the timeline, state
		// changes included, there is no gap to fill.
		if gap {
			st, err := whole()
			if err != nil {
				return nil, err
			}
			since, err := s.stateAt(ctx, roomID, after)
			if err != nil {
				return nil, err
			}
			if stateEvs, err = s.stateEvents(ctx, st, since); err != nil {
				return nil, err
			}
		}
		if req.Filter.Room.State.LazyLoadMembers && len(tl) > 0 {
			// Lazy-loading clients get the membership of each timeline sender
			// with their events, as they may not have it yet.
			members := start
			if members == nil {
				var err error
				if members, err = s.engine.StateKeysAt(ctx, tl[0].StateBefore, senderKeys(tl)); err != nil {
					return nil, err
				}
			}
			var err error
			if stateEvs, err = s.addSenders(ctx, stateEvs, members, tl); err != nil {
				return nil, err
			}
		}
	}
	if mode != stateNone {
		var err error
		if stateEvs, err = s.withEndState(ctx, roomID, upto, whole, tl, stateEvs); err != nil {
			return nil, err
		}
		stateEvs = s.filterState(req, stateEvs, tl, false)
	}
	return stateEvs, nil
}

// stateAfter is the state_after section (spec v1.16, MSC4222): the
// state at the end of the timeline (at upto), whole or as the changes
// since the token, timeline state events included since the client
// takes its state from this section alone. With lazy-loaded members it
// has the members of the timeline's senders as they are at its end.
func (s *Service) stateAfter(ctx context.Context, req Request, roomID string, after, upto int64, tl []*rooms.Event, mode stateMode) ([]*rooms.Event, error) {
	if mode == stateNone {
		return nil, nil
	}
	end, err := s.stateAt(ctx, roomID, upto)
	if err != nil {
		return nil, err
	}
	var base rooms.StateMap
	if mode == stateDelta {
		if base, err = s.stateAt(ctx, roomID, after); err != nil {
			return nil, err
		}
	}
	stateEvs, err := s.stateEvents(ctx, end, base)
	if err != nil {
		return nil, err
	}
	if mode == stateDelta && req.Filter.Room.State.LazyLoadMembers {
		if stateEvs, err = s.addSenders(ctx, stateEvs, end, tl); err != nil {
			return nil, err
		}
	}
	return s.filterState(req, stateEvs, tl, true), nil
}

// outOfBand reports whether an event is a membership stored without
// room state: only a create event has no state before it otherwise.
func outOfBand(ev *rooms.Event) bool {
	return ev.StateBefore == 0 && ev.Type() != spec.MRoomCreate
}

func hasMembers(evs []*rooms.Event) bool {
	for _, ev := range evs {
		if ev.Type() == spec.MRoomMember {
			return true
		}
	}
	return false
}

// addSenders adds to evs the memberships in state of the timeline's
// senders that are not there yet.
func (s *Service) addSenders(ctx context.Context, evs []*rooms.Event, state rooms.StateMap, tl []*rooms.Event) ([]*rooms.Event, error) {
	have := map[int64]bool{}
	for _, ev := range evs {
		have[ev.NID] = true
	}
	var nids []int64
	for _, k := range senderKeys(tl) {
		if nid, ok := state[k]; ok && !have[nid] {
			have[nid] = true
			nids = append(nids, nid)
		}
	}
	if len(nids) == 0 {
		return evs, nil
	}
	more, err := s.engine.EventsByNID(ctx, nids)
	if err != nil {
		return nil, err
	}
	return append(evs, more...), nil
}

// senderKeys are the state keys of the timeline's senders' memberships,
// in the timeline's order.
func senderKeys(tl []*rooms.Event) []roommodel.StateKey {
	keys := make([]roommodel.StateKey, 0, len(tl))
	for _, ev := range tl {
		if k := (roommodel.StateKey{Type: spec.MRoomMember, StateKey: ev.Sender()}); !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	return keys
}

// stateEvents loads the events of state that differ from base (all of
// state when base is nil), in a stable order.
func (s *Service) stateEvents(ctx context.Context, state, base rooms.StateMap) ([]*rooms.Event, error) {
	var nids []int64
	for k, nid := range state {
		if base == nil || base[k] != nid {
			nids = append(nids, nid)
		}
	}
	sort.Slice(nids, func(i, j int) bool { return nids[i] < nids[j] })
	return s.engine.EventsByNID(ctx, nids)
}

// filterState applies the state filter and lazy-loading of members: with
// lazy_load_members only the members who sent timeline events (and the
// syncing user) are kept. Events also in the timeline are left out
// unless keepTimeline (state_after, which the client reads alone).
func (s *Service) filterState(req Request, evs []*rooms.Event, timeline []*rooms.Event, keepTimeline bool) []*rooms.Event {
	sf := req.Filter.Room.State
	senders := map[string]bool{req.UserID: true}
	inTimeline := map[string]bool{}
	for _, ev := range timeline {
		senders[ev.Sender()] = true
		inTimeline[ev.EventID()] = true
	}
	out := evs[:0:0]
	for _, ev := range evs {
		if (inTimeline[ev.EventID()] && !keepTimeline) || !sf.Allows(ev.Type(), ev.Sender(), ev.RoomID().String(), ev.HasURL) {
			continue
		}
		if sf.LazyLoadMembers && ev.Type() == spec.MRoomMember && !senders[*ev.StateKey()] {
			continue
		}
		out = append(out, ev)
	}
	return out
}

// summary is the room summary: heroes (rooms.Heroes' rule, picked by the
// store without listing every member) and member counts.
func (s *Service) summary(ctx context.Context, roomID, userID string) (map[string]any, error) {
	joined, invited, err := s.store.MemberCounts(ctx, roomID)
	if err != nil {
		return nil, err
	}
	heroes, err := s.store.RoomHeroes(ctx, roomID, userID, rooms.MaxHeroes)
	if err != nil {
		return nil, err
	}
	if heroes == nil {
		heroes = []string{} // m.heroes is a list, never null
	}
	return map[string]any{"m.heroes": heroes, "m.joined_member_count": joined, "m.invited_member_count": invited}, nil
}
