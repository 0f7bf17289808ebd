package clientsync

import (
	"context"
	"slices"
	"sync/atomic"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/cache"
	"github.com/myelin-chat/myelin/internal/clientevent"
	"github.com/myelin-chat/myelin/internal/filter"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// Store is the storage /sync reads.
type Store interface {
	MembershipsOf(ctx context.Context, userID string, memberships ...string) ([]store.RoomMembership, error)
	RoomEvents(ctx context.Context, roomID string, after, upto int64, limit int, backwards bool) ([]int64, error)
	RoomsWithEvents(ctx context.Context, after, upto int64) ([]string, error)
	MembershipChanges(ctx context.Context, userID string, after, upto int64) ([]store.EventRow, error)
	StateAfterAtOrBefore(ctx context.Context, roomID string, pos int64) (int64, error)
	MemberCounts(ctx context.Context, roomID string) (joined, invited int64, err error)
	RoomMembers(ctx context.Context, roomID string) ([]store.RoomMembership, error)
	RoomHeroes(ctx context.Context, roomID, self string, limit int) ([]string, error)
	ForgottenRooms(ctx context.Context, userID string) (map[string]bool, error)
	PartialStateCompleted(ctx context.Context, after, upto int64) ([]string, error)
}

// Service computes sync responses.
type Service struct {
	store    Store
	engine   *rooms.Engine
	notifier *Notifier
	render   clientevent.Renderer
	// active caches roomsWithEvents answers, by range; memberships
	// caches each user's memberships (see membershipsOf). Both are
	// bounded by an estimate of their memory (WithCacheBytes); pages caches
	// timeline pages (see roomEvents), bounded by their memory
	// (pagesBytes).
	active      *cache.LRU[[2]int64, map[string]bool]
	memberships *cache.LRU[string, userMemberships]
	pages       *cache.LRU[roomRange, []int64]
	// states caches StateAfterAtOrBefore answers (see stateAfterAt),
	// bounded like pages.
	states *cache.LRU[roomPos, int64]
	// statesGen counts forgetStates calls: an answer read across one is
	// not cached, since it may predate the completion that dropped it.
	statesGen atomic.Uint64
	sources   Sources
}

// New makes the sync service; src are the streams besides rooms that
// responses carry.
func New(st Store, engine *rooms.Engine, n *Notifier, r clientevent.Renderer, src Sources, opts ...Option) *Service {
	o := options{cacheBytes: DefaultCacheBytes / 2}
	for _, opt := range opts {
		opt(&o)
	}
	return &Service{store: st, engine: engine, notifier: n, render: r, sources: src,
		active:      cache.ExpireWhenIdle(cache.NewLRU[[2]int64, map[string]bool](max(1, o.cacheBytes/2))),
		memberships: cache.ExpireWhenIdle(cache.NewLRU[string, userMemberships](max(1, o.cacheBytes/2))),
		pages:       cache.ExpireWhenIdle(cache.NewLRU[roomRange, []int64](pagesBytes)),
		states:      cache.ExpireWhenIdle(cache.NewLRU[roomPos, int64](statesBytes))}
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
	// UseStateAfter asks for state_after, the state changes up to the
	// end of the timeline, in place of state (spec v1.16, MSC4222).
	UseStateAfter bool
	Filter        *filter.Filter
	// ignored are the users the requester ignores (m.ignored_user_list):
	// their events and invites are left out.
	ignored map[string]bool
	// invites is the requester's invite permission, read when the
	// response first has an invite.
	invites *invitePermission
	// known are the user's memberships as the request last read them,
	// kept across its wait (see membershipsOf); nil outside Sync.
	known *userMemberships
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
	// Presence changes wake the request only if it reports them.
	register := s.notifier.RegisterWithPresence
	if req.Filter.Presence.ExcludesType("m.presence") {
		register = s.notifier.Register
	}
	req.known = &userMemberships{}
	deadline := time.NewTimer(req.Timeout)
	defer deadline.Stop()
	for {
		// Register before reading the stream position, so that nothing
		// published in between is missed.
		w := register(req.UserID)
		req.invites = &invitePermission{rules: s.sources.Invites, userID: req.UserID}
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
	memberships, err := s.membershipsAt(ctx, req.UserID, upto, req.known)
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
	// newlyShared are the users who came to share a joined room with the
	// user since the token; an incremental sync gives their presence
	// whenever it last changed, as Synapse does.
	newlyShared map[string]bool
	// completed are the rooms whose partial state was completed in the
	// range: sent again as newly joined (see joinedSince).
	completed map[string]bool
}

// shareWith notes users who newly share a room with the user.
func (p *pass) shareWith(users ...string) {
	for _, u := range users {
		if u == p.req.UserID {
			continue
		}
		if p.newlyShared == nil {
			p.newlyShared = map[string]bool{}
		}
		p.newlyShared[u] = true
	}
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
	completed, err := s.store.PartialStateCompleted(ctx, p.after, p.upto)
	if err != nil {
		return err
	}
	for _, id := range completed {
		if p.completed == nil {
			p.completed = map[string]bool{}
		}
		p.completed[id] = true
	}
	s.forgetStates(p.completed)
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
