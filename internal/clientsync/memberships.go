package clientsync

import (
	"context"
	"errors"
	"slices"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// membershipHistory is how the user's membership of a room went since
// the token.
type membershipHistory struct {
	// events are the user's membership events in range, oldest first.
	events []store.EventRow
	// atSince is the membership at the token; inRange the memberships the
	// user went through since, the current one last.
	atSince string
	inRange []string
}

func (s *Service) membershipHistory(ctx context.Context, m store.RoomMembership, evs []store.EventRow) (membershipHistory, error) {
	h := membershipHistory{events: evs, atSince: m.Membership}
	if len(evs) == 0 {
		return h, nil
	}
	var err error
	if h.atSince, err = s.membershipBefore(ctx, evs[0]); err != nil {
		return h, err
	}
	for _, ev := range evs {
		if ev.Membership != nil {
			h.inRange = append(h.inRange, *ev.Membership)
		}
	}
	return h, nil
}

// newlyJoined reports whether the user joined, or left and rejoined,
// since the token.
func (h membershipHistory) newlyJoined() bool {
	return len(h.events) > 0 && (h.atSince != spec.Join || slices.ContainsFunc(h.inRange, func(ms string) bool { return ms != spec.Join }))
}

// wasIn reports whether the user was in the room (joined, invited or
// knocking) at the token or since, before their current membership.
func (h membershipHistory) wasIn() bool {
	in := isIn(h.atSince)
	for _, ms := range h.inRange[:max(len(h.inRange)-1, 0)] {
		in = in || isIn(ms)
	}
	return in
}

// lastLeave is the user's last leave or ban in range.
func (h membershipHistory) lastLeave() (store.EventRow, bool) {
	for i := len(h.events) - 1; i >= 0; i-- {
		if ms := h.events[i].Membership; ms != nil && (*ms == spec.Leave || *ms == spec.Ban) {
			return h.events[i], true
		}
	}
	return store.EventRow{}, false
}

// joinedSince adds a joined room that has news: with its whole state
// when the user is newly joined (the client has none of it) or full
// state is asked for, else with the state that changed. A room whose
// partial state was completed in the range counts as newly joined, as
// Synapse treats it: the client holds only the members the partial
// state knew, and learns the others from the full state, with the
// timeline limited.
func (s *Service) joinedSince(ctx context.Context, p *pass, m store.RoomMembership, h membershipHistory, active bool) error {
	newlyJoined := h.newlyJoined() || p.completed[m.RoomID]
	if !newlyJoined && !p.req.FullState && !active {
		return nil
	}
	mode := stateDelta
	if newlyJoined || p.req.FullState {
		mode = stateFull
	}
	room, err := s.joinedRoom(ctx, p.req, p.vis, m.RoomID, p.after, p.upto, mode)
	if err != nil {
		return err
	}
	if newlyJoined {
		if err := s.newlyJoinedRoom(ctx, p, m.RoomID, room); err != nil {
			return err
		}
	} else {
		p.shareWith(room.joiners...)
	}
	if mode == stateDelta && len(room.Timeline.Events) == 0 && len(room.State.Events) == 0 && (room.StateAfter == nil || len(room.StateAfter.Events) == 0) {
		return nil // only events this user may not see, or filtered out
	}
	p.resp.Rooms.Join[m.RoomID] = room
	return nil
}

// newlyJoinedRoom completes the entry of a room the user joined since
// the token. Its timeline is limited unless it starts at the room's
// creation: the client has none of the room's history and must learn
// that there is more to page back to, as Synapse marks it. And all its
// members newly share a room with the user, for presence.
func (s *Service) newlyJoinedRoom(ctx context.Context, p *pass, roomID string, room *JoinedRoom) error {
	if !room.Timeline.Limited {
		_, err := s.stateAfterAt(ctx, roomID, p.after)
		switch {
		case err == nil:
			room.Timeline.Limited = true
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
	}
	members, err := s.store.RoomMembers(ctx, roomID)
	if err != nil {
		return err
	}
	for _, m := range members {
		if m.Membership == spec.Join {
			p.shareWith(m.RoomID) // RoomMembers puts the user ID there
		}
	}
	return nil
}

// invitedSince adds an invite or knock made since the token.
func (s *Service) invitedSince(ctx context.Context, p *pass, m store.RoomMembership, h membershipHistory) error {
	if len(h.events) == 0 && !p.req.FullState {
		return nil
	}
	if err := s.strippedRoom(ctx, p.req, p.resp, m); err != nil {
		return err
	}
	// Left a joined room and got invited (or knocked) again since the
	// token: the client must also learn that it left.
	if h.atSince != spec.Join && !slices.Contains(h.inRange, spec.Join) {
		return nil
	}
	leave, ok := h.lastLeave()
	if !ok {
		return nil
	}
	if forgotten, err := p.isForgotten(ctx, m.RoomID); err != nil || forgotten {
		return err
	}
	left := store.RoomMembership{RoomID: m.RoomID, Membership: *leave.Membership, EventNID: leave.NID}
	return s.leftRoom(ctx, p.req, p.resp, p.vis, left, p.after, h.atSince != spec.Join)
}

// leftSince adds a room the user left since the token. A room shows in
// "leave" when the user was in it at the token or since: a rejected
// invite or a withdrawn knock too, so that the client drops the room.
//
// A leave since the token shows even when the user forgot the room
// already (left and forgot between two syncs): the client must still
// learn that it left, once, as Synapse shows it; a forgotten room never
// shows again after that, nor in a full-state sync.
func (s *Service) leftSince(ctx context.Context, p *pass, m store.RoomMembership, h membershipHistory) error {
	if !(len(h.events) > 0 && h.wasIn()) {
		if !(p.req.FullState && p.req.Filter.Room.IncludeLeave) {
			return nil
		}
		if forgotten, err := p.isForgotten(ctx, m.RoomID); err != nil || forgotten {
			return err
		}
	}
	return s.leftRoom(ctx, p.req, p.resp, p.vis, m, p.after, p.req.FullState || h.atSince != spec.Join)
}

// isIn reports whether a membership puts a room in one of the sections
// other than "leave".
func isIn(membership string) bool {
	return membership == spec.Join || membership == spec.Invite || membership == spec.Knock
}

// membershipsAt lists the user's memberships at a stream position. The
// materialised current state is never behind the position (an event's
// membership is stored before its position becomes readable), but may be
// ahead of it: those memberships are wound back to the ones they replaced,
// so that a change is reported exactly once, with the position it has.
// known, when not nil, is what the request read before (membershipsOf).
func (s *Service) membershipsAt(ctx context.Context, userID string, pos int64, known *userMemberships) ([]store.RoomMembership, error) {
	ms, err := s.membershipsOf(ctx, userID, known)
	if err != nil {
		return nil, err
	}
	// Only memberships that changed after pos need their events read (a
	// user in 1,000 rooms would otherwise load 1,000 events cold).
	var later []store.RoomMembership
	for _, m := range ms {
		if m.StreamPos > pos {
			later = append(later, m)
		}
	}
	evs, err := rooms.EventsFor(ctx, s.engine, later, func(m store.RoomMembership) int64 { return m.EventNID })
	if err != nil {
		return nil, err
	}
	byNID := make(map[int64]*rooms.Event, len(evs))
	for _, ev := range evs {
		byNID[ev.NID] = ev
	}
	out := ms[:0]
	for _, m := range ms {
		if m.StreamPos <= pos {
			out = append(out, m)
			continue
		}
		ev := byNID[m.EventNID]
		for ev != nil && ev.StreamPos > pos {
			if ev.ReplacesNID == 0 {
				ev = nil
				break
			}
			prev, err := s.engine.EventsByNID(ctx, []int64{ev.ReplacesNID})
			if err != nil {
				return nil, err
			}
			ev = nil
			if len(prev) > 0 {
				ev = prev[0]
			}
		}
		if ev == nil {
			continue // no membership yet at pos
		}
		if ev.NID != m.EventNID {
			if m.Membership, err = ev.Membership(); err != nil {
				return nil, err
			}
			m.EventNID, m.StreamPos = ev.NID, ev.StreamPos
		}
		out = append(out, m)
	}
	return out, nil
}

// userMemberships is a user's memberships in the materialised current
// state, as read after the stream had reached asOf (read is false until
// they were).
type userMemberships struct {
	asOf int64
	ms   []store.RoomMembership
	read bool
}

// membershipsOf lists a user's memberships in the current state. A woken
// /sync would otherwise query them every time although they rarely
// change: the list read once stays complete up to any readable position
// as long as the engine has stored no membership event about the user
// after asOf (such an event is noted before its position is readable,
// and asOf is read before the query, so the query saw every one up to
// asOf). Call it after reading the position the sync runs up to. The
// list may be ahead of that position, as the store's is.
//
// A long-poll keeps the list it read in known across its wait, and
// its woken pass reads it from there: the cache is bounded by bytes
// (a quarter of memory.sync_cache_mib, some 850 users of 10 rooms at
// the default) and the pollers come round in turn, so with more of
// them than it holds (1,000 of the scale curve's 10,000 users) an LRU
// had let each one's list go before its next pass, and every woken
// /sync asked the database (9 % of the server's CPU there). The woken
// pass puts the list back, so that the client's next /sync, which
// follows the answer at once, finds it in the cache.
func (s *Service) membershipsOf(ctx context.Context, userID string, known *userMemberships) ([]store.RoomMembership, error) {
	if known != nil && known.read && s.engine.MembershipUnchanged(userID, known.asOf) {
		s.memberships.PutCost(userID, *known, membershipsCost(userID, known.ms))
		return slices.Clone(known.ms), nil
	}
	c, ok := s.memberships.Get(userID)
	if !ok || !s.engine.MembershipUnchanged(userID, c.asOf) {
		asOf := s.engine.Stream().Current()
		ms, err := s.store.MembershipsOf(ctx, userID)
		if err != nil {
			return nil, err
		}
		c = userMemberships{asOf: asOf, ms: ms, read: true}
		s.memberships.PutCost(userID, c, membershipsCost(userID, ms))
	}
	if known != nil {
		*known = c
	}
	return slices.Clone(c.ms), nil
}

// membershipBefore is the user's membership before a membership event.
func (s *Service) membershipBefore(ctx context.Context, ev store.EventRow) (string, error) {
	if ev.ReplacesNID == 0 {
		return "", nil
	}
	prev, err := s.engine.EventsByNID(ctx, []int64{ev.ReplacesNID})
	if err != nil || len(prev) == 0 {
		return "", err
	}
	return prev[0].Membership()
}
