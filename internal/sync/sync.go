package sync

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/cache"
	"github.com/myelin-chat/myelin/internal/clientevent"
	"github.com/myelin-chat/myelin/internal/filter"
	"github.com/myelin-chat/myelin/internal/membership"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// Store is the storage /sync reads.
type Store interface {
	MembershipsOf(ctx context.Context, userID string, memberships ...string) ([]store.RoomMembership, error)
	RoomEvents(ctx context.Context, roomID string, after, upto int64, limit int, backwards bool) ([]int64, error)
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
	// active caches roomsWithEvents answers, by range.
	active *cache.LRU[[2]int64, map[string]bool]
	// memberships caches each user's memberships (see membershipsOf),
	// bounded by their total number (1<<18: some 25 MB); pages caches
	// timeline pages (see roomEvents), bounded by their total length.
	memberships *cache.LRU[string, userMemberships]
	pages       *cache.LRU[roomRange, []int64]
	sources     Sources
}

// UseSources sets the streams besides rooms that responses carry.
func (s *Service) UseSources(src Sources) { s.sources = src }

// New makes the sync service.
func New(st Store, engine *rooms.Engine, n *Notifier, r clientevent.Renderer) *Service {
	return &Service{store: st, engine: engine, notifier: n, render: r, active: cache.NewLRU[[2]int64, map[string]bool](4096),
		memberships: cache.NewLRU[string, userMemberships](1 << 18), pages: cache.NewLRU[roomRange, []int64](1 << 16)}
}

// Request is a parsed /sync request.
type Request struct {
	UserID   string
	DeviceID string
	Viewer   clientevent.Viewer
	// SetPresence is the set_presence parameter ("" means online).
	SetPresence string
	Since       *Token
	Timeout     time.Duration
	FullState   bool
	Filter      *filter.Filter
	// ignored are the users the requester ignores (m.ignored_user_list):
	// their events and invites are left out.
	ignored map[string]bool
}

// defaultTimelineLimit is Synapse's default timeline limit.
const defaultTimelineLimit = 10

// maxTimelineLimit caps what a filter may ask for.
const maxTimelineLimit = 1000

// A timeline looks at up to timelineScanFactor*limit+timelineScanExtra
// events to find limit that the user may see and the filter allows.
const (
	timelineScanFactor = 10
	timelineScanExtra  = 100
)

// Sync answers a /sync request, long-polling up to req.Timeout when
// nothing changed since the token.
func (s *Service) Sync(ctx context.Context, req Request) (*Response, error) {
	if req.Filter == nil {
		req.Filter = &filter.Filter{}
	}
	if p := s.sources.Presence; p != nil {
		done, err := p.SetFromSync(ctx, req.UserID, req.SetPresence)
		if err != nil {
			return nil, err
		}
		defer done()
	}
	if ad := s.sources.AccountData; ad != nil {
		ignored, err := ad.IgnoredUsers(ctx, req.UserID)
		if err != nil {
			return nil, err
		}
		req.ignored = ignored
	}
	deadline := time.NewTimer(req.Timeout)
	defer deadline.Stop()
	for {
		// Register before reading the stream position, so that nothing
		// published in between is missed.
		w := s.notifier.Register(req.UserID)
		resp, err := s.compute(ctx, req)
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
func (s *Service) compute(ctx context.Context, req Request) (*Response, error) {
	upto := s.engine.Stream().Current()
	memberships, err := s.membershipsAt(ctx, req.UserID, upto)
	if err != nil {
		return nil, err
	}
	next := Token{Events: upto}
	if req.Since != nil {
		next.ToDevice = req.Since.ToDevice
	}
	p := &pass{req: req, resp: newResponse(next), next: next, vis: s.engine.VisibilityFor(req.UserID), upto: upto, store: s.store}
	rf := req.Filter.Room
	memberships = slices.DeleteFunc(memberships, func(m store.RoomMembership) bool {
		return !filter.AllowsRoom(rf.Rooms, rf.NotRooms, m.RoomID)
	})
	if req.Since == nil {
		err = s.initialRooms(ctx, p, memberships)
	} else {
		p.after = min(req.Since.Events, upto)
		err = s.incrementalRooms(ctx, p, memberships)
	}
	if err != nil {
		return nil, err
	}
	joined := map[string]bool{}
	for _, m := range memberships {
		if m.Membership == spec.Join {
			joined[m.RoomID] = true
		}
	}
	if err := s.addExtras(ctx, p, joined); err != nil {
		return nil, err
	}
	return p.resp, nil
}

// pass is one computation of a response: what all its rooms share.
type pass struct {
	req       Request
	resp      *Response
	vis       *rooms.Visibility
	store     Store
	forgotten map[string]bool // loaded on first use: only left rooms need it
	// after and upto bound the range of the sync, (after, upto]; after is
	// 0 for an initial sync.
	after, upto int64
	// next is the response's next_batch.
	next Token
}

// isForgotten reports whether the user forgot a room.
func (p *pass) isForgotten(ctx context.Context, roomID string) (bool, error) {
	if p.forgotten == nil {
		f, err := p.store.ForgottenRooms(ctx, p.req.UserID)
		if err != nil {
			return false, err
		}
		p.forgotten = f
	}
	return p.forgotten[roomID], nil
}

// initialRooms adds every room the user has a membership of; left rooms
// only when the filter asks for them.
func (s *Service) initialRooms(ctx context.Context, p *pass, memberships []store.RoomMembership) error {
	for _, m := range memberships {
		switch m.Membership {
		case spec.Join:
			room, err := s.joinedRoom(ctx, p.req, p.vis, m.RoomID, 0, p.upto, stateFull)
			if err != nil {
				return err
			}
			p.resp.Rooms.Join[m.RoomID] = room
		case spec.Invite, spec.Knock:
			if err := s.strippedRoom(ctx, p.req, p.resp, m); err != nil {
				return err
			}
		case spec.Leave, spec.Ban:
			if !p.req.Filter.Room.IncludeLeave {
				continue
			}
			if forgotten, err := p.isForgotten(ctx, m.RoomID); err != nil || forgotten {
				if err != nil {
					return err
				}
				continue
			}
			if err := s.leftRoom(ctx, p.req, p.resp, p.vis, m, 0, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// incrementalRooms adds the rooms with news since the token: events, or
// changes of the user's membership.
func (s *Service) incrementalRooms(ctx context.Context, p *pass, memberships []store.RoomMembership) error {
	var changes []store.EventRow
	if !s.engine.MembershipUnchanged(p.req.UserID, p.after) {
		var err error
		if changes, err = s.store.MembershipChanges(ctx, p.req.UserID, p.after, p.upto); err != nil {
			return err
		}
	}
	changed := map[string][]store.EventRow{}
	for _, c := range changes {
		changed[c.RoomID] = append(changed[c.RoomID], c)
	}
	active, err := s.roomsWithEvents(ctx, p.after, p.upto)
	if err != nil {
		return err
	}
	for _, m := range memberships {
		h, err := s.membershipHistory(ctx, m, changed[m.RoomID])
		if err != nil {
			return err
		}
		switch m.Membership {
		case spec.Join:
			err = s.joinedSince(ctx, p, m, h, active[m.RoomID])
		case spec.Invite, spec.Knock:
			err = s.invitedSince(ctx, p, m, h)
		case spec.Leave, spec.Ban:
			err = s.leftSince(ctx, p, m, h)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

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
// state is asked for, else with the state that changed.
func (s *Service) joinedSince(ctx context.Context, p *pass, m store.RoomMembership, h membershipHistory, active bool) error {
	newlyJoined := h.newlyJoined()
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
	if mode == stateDelta && len(room.Timeline.Events) == 0 && len(room.State.Events) == 0 {
		return nil // only events this user may not see, or filtered out
	}
	p.resp.Rooms.Join[m.RoomID] = room
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
func (s *Service) leftSince(ctx context.Context, p *pass, m store.RoomMembership, h membershipHistory) error {
	if forgotten, err := p.isForgotten(ctx, m.RoomID); err != nil || forgotten {
		return err
	}
	if !(len(h.events) > 0 && h.wasIn()) && !(p.req.FullState && p.req.Filter.Room.IncludeLeave) {
		return nil
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
func (s *Service) membershipsAt(ctx context.Context, userID string, pos int64) ([]store.RoomMembership, error) {
	ms, err := s.membershipsOf(ctx, userID)
	if err != nil {
		return nil, err
	}
	nids := make([]int64, len(ms))
	for i, m := range ms {
		nids[i] = m.EventNID
	}
	evs, err := s.engine.EventsByNID(ctx, nids)
	if err != nil {
		return nil, err
	}
	byNID := make(map[int64]*rooms.Event, len(evs))
	for _, ev := range evs {
		byNID[ev.NID] = ev
	}
	out := ms[:0]
	for _, m := range ms {
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
			m.EventNID = ev.NID
		}
		out = append(out, m)
	}
	return out, nil
}

// userMemberships is a user's memberships in the materialised current
// state, as read after the stream had reached asOf.
type userMemberships struct {
	asOf int64
	ms   []store.RoomMembership
}

// membershipsOf lists a user's memberships in the current state. A woken
// /sync would otherwise query them every time although they rarely
// change: the list read once stays complete up to any readable position
// as long as the engine has stored no membership event about the user
// after asOf (such an event is noted before its position is readable,
// and asOf is read before the query, so the query saw every one up to
// asOf). Call it after reading the position the sync runs up to. The
// list may be ahead of that position, as the store's is.
func (s *Service) membershipsOf(ctx context.Context, userID string) ([]store.RoomMembership, error) {
	if c, ok := s.memberships.Get(userID); ok && s.engine.MembershipUnchanged(userID, c.asOf) {
		return slices.Clone(c.ms), nil
	}
	asOf := s.engine.Stream().Current()
	ms, err := s.store.MembershipsOf(ctx, userID)
	if err != nil {
		return nil, err
	}
	s.memberships.PutCost(userID, userMemberships{asOf: asOf, ms: ms}, len(ms)+1)
	return slices.Clone(ms), nil
}

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
	s.pages.PutCost(key, nids, len(nids)+1)
	return nids, nil
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
	s.active.PutCost(key, m, len(m)+1)
	return m, nil
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
			// Ignored users' messages are left out; their state events
			// stay, since the room's state depends on them (Synapse).
			ok := tf.Allows(ev.Type(), ev.Sender(), roomID, ev.HasURL) && !(req.ignored[ev.Sender()] && !ev.IsState())
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
	room := newJoinedRoom()
	room.Timeline.Limited = limited
	room.Timeline.PrevBatch = Token{Events: upto}.String()
	if limited {
		room.Timeline.PrevBatch = Token{Events: cursor}.String()
	}
	var start rooms.StateMap
	if len(tl) > 0 {
		room.Timeline.PrevBatch = Token{Events: tl[0].StreamPos - 1}.String()
		if start, err = s.engine.StateAt(ctx, tl[0].StateBefore); err != nil {
			return nil, err
		}
	} else if start, err = s.stateAt(ctx, roomID, upto); err != nil {
		return nil, err
	}
	var stateEvs []*rooms.Event
	switch mode {
	case stateFull:
		if stateEvs, err = s.stateEvents(ctx, start, nil); err != nil {
			return nil, err
		}
	case stateDelta:
		// When every event since the token is in the timeline, state
		// changes included, there is no gap to fill.
		if limited || dropped {
			since, err := s.stateAt(ctx, roomID, after)
			if err != nil {
				return nil, err
			}
			if stateEvs, err = s.stateEvents(ctx, start, since); err != nil {
				return nil, err
			}
		}
		if req.Filter.Room.State.LazyLoadMembers {
			// Lazy-loading clients get the membership of each timeline sender
			// with their events, as they may not have it yet.
			if stateEvs, err = s.addSenders(ctx, stateEvs, start, tl); err != nil {
				return nil, err
			}
		}
	}
	if mode != stateNone {
		stateEvs = s.filterState(req, stateEvs, tl)
	}
	viewer := req.Viewer
	if room.State.Events, err = s.render.Render(ctx, stateEvs, viewer, req.UserID, true); err != nil {
		return nil, err
	}
	if room.Timeline.Events, err = s.render.Render(ctx, tl, viewer, req.UserID, true); err != nil {
		return nil, err
	}
	// Like Synapse, send the summary only when it may have changed: with
	// full state, or when membership events are in the response.
	if mode == stateFull || hasMembers(stateEvs) || hasMembers(tl) {
		if room.Summary, err = s.summary(ctx, roomID, req.UserID); err != nil {
			return nil, err
		}
	}
	return room, nil
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
	for _, ev := range tl {
		if nid, ok := state[store.StateKey{Type: spec.MRoomMember, StateKey: ev.Sender()}]; ok && !have[nid] {
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
	inTimeline := map[string]bool{}
	for _, ev := range timeline {
		senders[ev.Sender()] = true
		inTimeline[ev.EventID()] = true
	}
	out := evs[:0:0]
	for _, ev := range evs {
		if inTimeline[ev.EventID()] || !sf.Allows(ev.Type(), ev.Sender(), ev.RoomID().String(), ev.HasURL) {
			continue
		}
		if sf.LazyLoadMembers && ev.Type() == spec.MRoomMember && !senders[*ev.StateKey()] {
			continue
		}
		out = append(out, ev)
	}
	return out
}

// summary is the room summary: heroes and member counts. Heroes are, as
// Synapse picks them, up to five other joined or invited members in user
// ID order, or the members who left when there are none.
func (s *Service) summary(ctx context.Context, roomID, userID string) (map[string]any, error) {
	joined, invited, err := s.store.MemberCounts(ctx, roomID)
	if err != nil {
		return nil, err
	}
	members, err := s.store.RoomMembers(ctx, roomID)
	if err != nil {
		return nil, err
	}
	heroes, gone := []string{}, []string{}
	for _, m := range members {
		// RoomMembers puts the member's user ID in RoomID.
		switch {
		case m.RoomID == userID:
		case m.Membership == spec.Join || m.Membership == spec.Invite:
			heroes = append(heroes, m.RoomID)
		case m.Membership == spec.Leave || m.Membership == spec.Ban:
			gone = append(gone, m.RoomID)
		}
	}
	if len(heroes) == 0 {
		heroes = gone
	}
	return map[string]any{"m.heroes": heroes[:min(len(heroes), 5)], "m.joined_member_count": joined, "m.invited_member_count": invited}, nil
}

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
	resp.Rooms.Leave[m.RoomID] = &LeftRoom{State: j.State, Timeline: j.Timeline}
	return nil
}
