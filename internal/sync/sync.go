package sync

import (
	"context"
	"errors"
	"slices"
	"sort"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/clientevent"
	"github.com/myelin-chat/myelin/internal/filter"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// Store is the storage /sync reads.
type Store interface {
	MembershipsOf(ctx context.Context, userID string, memberships ...string) ([]store.RoomMembership, error)
	RoomEvents(ctx context.Context, roomID string, after, upto int64, limit int, backwards bool) ([]store.EventRow, error)
	RoomsWithEvents(ctx context.Context, after, upto int64) ([]string, error)
	MembershipChanges(ctx context.Context, userID string, after, upto int64) ([]store.EventRow, error)
	LastEventAtOrBefore(ctx context.Context, roomID string, pos int64) (store.EventRow, error)
	MemberCounts(ctx context.Context, roomID string) (joined, invited int64, err error)
	RoomMembers(ctx context.Context, roomID string) ([]store.RoomMembership, error)
	ForgottenRooms(ctx context.Context, userID string) (map[string]bool, error)
}

// Service computes sync responses.
type Service struct {
	store    Store
	engine   *rooms.Engine
	notifier *Notifier
	render   clientevent.Renderer
}

// New makes the sync service.
func New(st Store, engine *rooms.Engine, n *Notifier, r clientevent.Renderer) *Service {
	return &Service{store: st, engine: engine, notifier: n, render: r}
}

// Request is a parsed /sync request.
type Request struct {
	UserID    string
	Viewer    clientevent.Viewer
	Since     *Token
	Timeout   time.Duration
	FullState bool
	Filter    *filter.Filter
}

// defaultTimelineLimit is Synapse's default timeline limit.
const defaultTimelineLimit = 10

// maxTimelineLimit caps what a filter may ask for.
const maxTimelineLimit = 1000

// Sync answers a /sync request, long-polling up to req.Timeout when
// nothing changed since the token.
func (s *Service) Sync(ctx context.Context, req Request) (*Response, error) {
	if req.Filter == nil {
		req.Filter = &filter.Filter{}
	}
	deadline := time.NewTimer(req.Timeout)
	defer deadline.Stop()
	for {
		memberships, err := s.store.MembershipsOf(ctx, req.UserID)
		if err != nil {
			return nil, err
		}
		var joined []string
		for _, m := range memberships {
			if m.Membership == spec.Join {
				joined = append(joined, m.RoomID)
			}
		}
		w := s.notifier.Register(req.UserID, joined)
		resp, err := s.compute(ctx, req, memberships)
		if err != nil || req.Since == nil || req.FullState || req.Timeout <= 0 || !resp.empty() {
			s.notifier.Unregister(w)
			return resp, err
		}
		select {
		case <-w.C:
			s.notifier.Unregister(w)
		case <-deadline.C:
			s.notifier.Unregister(w)
			return resp, nil
		case <-ctx.Done():
			s.notifier.Unregister(w)
			return resp, nil
		}
	}
}

// compute builds the response from the token to the current position.
func (s *Service) compute(ctx context.Context, req Request, memberships []store.RoomMembership) (*Response, error) {
	upto := s.engine.Stream().Current()
	resp := newResponse(Token{Events: upto})
	rf := req.Filter.Room
	forgotten, err := s.store.ForgottenRooms(ctx, req.UserID)
	if err != nil {
		return nil, err
	}
	vis := s.engine.VisibilityFor(req.UserID)
	if req.Since == nil {
		for _, m := range memberships {
			if !filter.AllowsRoom(rf.Rooms, rf.NotRooms, m.RoomID) {
				continue
			}
			switch m.Membership {
			case spec.Join:
				if err := s.joinedRoom(ctx, req, resp, vis, m.RoomID, 0, upto, true); err != nil {
					return nil, err
				}
			case spec.Invite, spec.Knock:
				if err := s.strippedRoom(ctx, resp, m); err != nil {
					return nil, err
				}
			case spec.Leave, spec.Ban:
				if rf.IncludeLeave && !forgotten[m.RoomID] {
					if err := s.leftRoom(ctx, req, resp, vis, m, 0); err != nil {
						return nil, err
					}
				}
			}
		}
		return resp, nil
	}

	after := min(req.Since.Events, upto)
	changes, err := s.store.MembershipChanges(ctx, req.UserID, after, upto)
	if err != nil {
		return nil, err
	}
	// firstChange is the user's first membership event in range per room:
	// what came before it tells whether a join is new.
	firstChange := map[string]store.EventRow{}
	for _, c := range changes {
		if _, ok := firstChange[c.RoomID]; !ok {
			firstChange[c.RoomID] = c
		}
	}
	active, err := s.store.RoomsWithEvents(ctx, after, upto)
	if err != nil {
		return nil, err
	}
	for _, m := range memberships {
		if !filter.AllowsRoom(rf.Rooms, rf.NotRooms, m.RoomID) {
			continue
		}
		first, changed := firstChange[m.RoomID]
		switch m.Membership {
		case spec.Join:
			newlyJoined := false
			if changed {
				prev, err := s.membershipBefore(ctx, first)
				if err != nil {
					return nil, err
				}
				newlyJoined = prev != spec.Join
			}
			if newlyJoined || req.FullState || slices.Contains(active, m.RoomID) {
				from := after
				if err := s.joinedRoom(ctx, req, resp, vis, m.RoomID, from, upto, newlyJoined || req.FullState); err != nil {
					return nil, err
				}
			}
		case spec.Invite, spec.Knock:
			if changed || req.FullState {
				if err := s.strippedRoom(ctx, resp, m); err != nil {
					return nil, err
				}
			}
		case spec.Leave, spec.Ban:
			if (changed || req.FullState && rf.IncludeLeave) && !forgotten[m.RoomID] {
				prev := spec.Leave
				if changed {
					if prev, err = s.membershipBefore(ctx, first); err != nil {
						return nil, err
					}
				}
				// A rejected invite or a withdrawn knock still ends up in "leave",
				// so that the client drops the room from its invite list.
				if prev != spec.Leave && prev != "" || req.FullState {
					if err := s.leftRoom(ctx, req, resp, vis, m, after); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	return resp, nil
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

// timeline loads up to limit visible, filtered events of a room in
// (after, upto], oldest first, and whether older ones in range were left out.
func (s *Service) timeline(ctx context.Context, req Request, vis *rooms.Visibility, roomID string, after, upto int64) ([]*rooms.Event, bool, error) {
	tf := req.Filter.Room.Timeline
	limit := tf.LimitOr(defaultTimelineLimit, maxTimelineLimit)
	var out []*rooms.Event
	cursor := upto
	for len(out) < limit {
		batch := limit - len(out) + 1
		rows, err := s.store.RoomEvents(ctx, roomID, after, cursor, batch, true)
		if err != nil {
			return nil, false, err
		}
		if len(rows) == 0 {
			break
		}
		nids := make([]int64, len(rows))
		for i, r := range rows {
			nids[i] = r.NID
		}
		evs, err := s.engine.EventsByNID(ctx, nids)
		if err != nil {
			return nil, false, err
		}
		for _, ev := range evs {
			cursor = ev.StreamPos - 1
			if !tf.Allows(ev.Type(), ev.Sender(), roomID, rooms.ContainsURL(ev)) {
				continue
			}
			ok, err := vis.CanSee(ctx, ev)
			if err != nil {
				return nil, false, err
			}
			if !ok {
				continue
			}
			if len(out) == limit {
				return reverse(out), true, nil
			}
			out = append(out, ev)
		}
		if len(rows) < batch {
			break
		}
	}
	if len(out) < limit {
		return reverse(out), false, nil
	}
	// Exactly limit events: limited if any older event remains in range.
	more, err := s.store.RoomEvents(ctx, roomID, after, cursor, 1, true)
	if err != nil {
		return nil, false, err
	}
	return reverse(out), len(more) > 0, nil
}

func reverse(evs []*rooms.Event) []*rooms.Event {
	slices.Reverse(evs)
	return evs
}

// stateAt is a room's state at a stream position (empty before the room).
func (s *Service) stateAt(ctx context.Context, roomID string, pos int64) (rooms.StateMap, error) {
	ev, err := s.store.LastEventAtOrBefore(ctx, roomID, pos)
	if errors.Is(err, store.ErrNotFound) {
		return rooms.StateMap{}, nil
	}
	if err != nil {
		return nil, err
	}
	return s.engine.StateAt(ctx, ev.StateAfter)
}

// joinedRoom adds a room's "join" entry. With full, the state section is
// the whole state at the start of the timeline; otherwise, when the
// timeline is limited, the state that changed between the token and the
// start of the timeline.
func (s *Service) joinedRoom(ctx context.Context, req Request, resp *Response, vis *rooms.Visibility, roomID string, after, upto int64, full bool) error {
	tl, limited, err := s.timeline(ctx, req, vis, roomID, after, upto)
	if err != nil {
		return err
	}
	room := &JoinedRoom{}
	room.Timeline.Limited = limited
	room.Timeline.PrevBatch = Token{Events: upto}.String()
	var start rooms.StateMap
	if len(tl) > 0 {
		room.Timeline.PrevBatch = Token{Events: tl[0].StreamPos - 1}.String()
		if start, err = s.engine.StateAt(ctx, tl[0].StateBefore); err != nil {
			return err
		}
	} else if start, err = s.stateAt(ctx, roomID, upto); err != nil {
		return err
	}
	var stateEvs []*rooms.Event
	switch {
	case full:
		if stateEvs, err = s.stateEvents(ctx, start, nil); err != nil {
			return err
		}
	case limited:
		since, err := s.stateAt(ctx, roomID, after)
		if err != nil {
			return err
		}
		if stateEvs, err = s.stateEvents(ctx, start, since); err != nil {
			return err
		}
	}
	stateEvs = s.filterState(req, stateEvs, tl)
	viewer := req.Viewer
	if room.State.Events, err = s.render.Render(ctx, stateEvs, viewer, req.UserID, true); err != nil {
		return err
	}
	if room.Timeline.Events, err = s.render.Render(ctx, tl, viewer, req.UserID, true); err != nil {
		return err
	}
	if room.Summary, err = s.summary(ctx, roomID, req.UserID); err != nil {
		return err
	}
	resp.Rooms.Join[roomID] = room
	return nil
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
// syncing user) are kept.
func (s *Service) filterState(req Request, evs []*rooms.Event, timeline []*rooms.Event) []*rooms.Event {
	sf := req.Filter.Room.State
	senders := map[string]bool{req.UserID: true}
	for _, ev := range timeline {
		senders[ev.Sender()] = true
	}
	inTimeline := map[string]bool{}
	for _, ev := range timeline {
		inTimeline[ev.EventID()] = true
	}
	out := evs[:0:0]
	for _, ev := range evs {
		if inTimeline[ev.EventID()] || !sf.Allows(ev.Type(), ev.Sender(), ev.RoomID().String(), rooms.ContainsURL(ev)) {
			continue
		}
		if sf.LazyLoadMembers && ev.Type() == spec.MRoomMember && !senders[*ev.StateKey()] {
			continue
		}
		out = append(out, ev)
	}
	return out
}

// summary is the room summary: heroes and member counts.
func (s *Service) summary(ctx context.Context, roomID, userID string) (map[string]any, error) {
	joined, invited, err := s.store.MemberCounts(ctx, roomID)
	if err != nil {
		return nil, err
	}
	members, err := s.store.RoomMembers(ctx, roomID)
	if err != nil {
		return nil, err
	}
	heroes := []string{}
	for _, m := range members {
		if m.RoomID != userID && (m.Membership == spec.Join || m.Membership == spec.Invite) && len(heroes) < 5 {
			heroes = append(heroes, m.RoomID)
		}
	}
	return map[string]any{"m.heroes": heroes, "m.joined_member_count": joined, "m.invited_member_count": invited}, nil
}

// strippedRoom adds an invite or knock entry with the stripped state the
// user is allowed to see before joining.
func (s *Service) strippedRoom(ctx context.Context, resp *Response, m store.RoomMembership) error {
	evs, err := s.engine.EventsByNID(ctx, []int64{m.EventNID})
	if err != nil || len(evs) == 0 {
		return err
	}
	own := evs[0]
	state, err := s.engine.StateAt(ctx, own.StateBefore)
	if err != nil {
		return err
	}
	var keys []store.StateKey
	for _, t := range clientevent.StrippedTypes {
		keys = append(keys, store.StateKey{Type: t})
	}
	keys = append(keys, store.StateKey{Type: spec.MRoomMember, StateKey: own.Sender()})
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
	stripped = append(stripped, clientevent.Strip(own))
	if m.Membership == spec.Invite {
		resp.Rooms.Invite[m.RoomID] = &StrippedRoom{InviteState: &EventList[clientevent.Stripped]{Events: stripped}}
	} else {
		resp.Rooms.Knock[m.RoomID] = &StrippedRoom{KnockState: &EventList[clientevent.Stripped]{Events: stripped}}
	}
	return nil
}

// leftRoom adds a "leave" entry: the timeline up to the leave, and the
// state at its start.
func (s *Service) leftRoom(ctx context.Context, req Request, resp *Response, vis *rooms.Visibility, m store.RoomMembership, after int64) error {
	evs, err := s.engine.EventsByNID(ctx, []int64{m.EventNID})
	if err != nil || len(evs) == 0 {
		return err
	}
	leavePos := evs[0].StreamPos
	tmp := newResponse(Token{})
	if err := s.joinedRoom(ctx, req, tmp, vis, m.RoomID, min(after, leavePos), leavePos, after == 0); err != nil {
		return err
	}
	j := tmp.Rooms.Join[m.RoomID]
	resp.Rooms.Leave[m.RoomID] = &LeftRoom{State: j.State, Timeline: j.Timeline}
	return nil
}
