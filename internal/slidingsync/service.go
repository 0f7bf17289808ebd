package slidingsync

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/cache"
	"github.com/myelin-chat/myelin/internal/clientevent"
	"github.com/myelin-chat/myelin/internal/clientsync"
	"github.com/myelin-chat/myelin/internal/keys"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/threadsubs"
)

// Store is what sliding sync reads beyond /sync's service.
type Store interface {
	LastPosOfTypesIn(ctx context.Context, roomIDs, types []string, upto int64) (map[string]int64, error)
	RoomListEntries(ctx context.Context, roomIDs []string) (map[string]store.RoomListEntry, error)
	FillRoomList(ctx context.Context, entries map[string]store.RoomListEntry) error
	CurrentStateNIDsIn(ctx context.Context, roomIDs []string, typ, stateKey string) (map[string]int64, error)
	LastEventAtOrBefore(ctx context.Context, roomID string, pos int64) (store.EventRow, error)
	MemberCounts(ctx context.Context, roomID string) (joined, invited int64, err error)
	RoomHeroes(ctx context.Context, roomID, self string, limit int) ([]string, error)
	ConnStore
}

// ThreadSubs is what the MSC4308 extension reads of thread
// subscriptions (internal/threadsubs).
type ThreadSubs interface {
	ChangesSince(ctx context.Context, userID string, pos int64, limit int) ([]threadsubs.Change, int64, error)
	MaxPos(ctx context.Context) (int64, error)
}

// Service answers sliding sync requests.
type Service struct {
	sync   *clientsync.Service
	engine *rooms.Engine
	store  Store
	render clientevent.Renderer
	conns  *connections

	// bump caches each room's bump_stamp as of bumpAsOf; rooms with
	// events after it are dropped from it before it is read.
	bumpMu   sync.Mutex
	bump     map[string]int64
	bumpAsOf int64
	// roomTypes caches each joined room's type (its create event's
	// content.type, nil for none), which never changes: Element X filters
	// every list by not_room_types, which would otherwise read the state
	// of every room of the user on every request.
	roomTypes  *cache.LRU[string, *string]
	threadSubs ThreadSubs
}

// New makes the service.
// threadSubs is nil when thread subscriptions are off (the MSC4308
// extension is then not served).
func New(sync *clientsync.Service, engine *rooms.Engine, st Store, render clientevent.Renderer, threadSubs ThreadSubs, opts ...Option) *Service {
	o := options{roomTypesBytes: defaultRoomTypesBytes}
	for _, opt := range opts {
		opt(&o)
	}
	s := &Service{sync: sync, engine: engine, store: st, render: render, conns: newConnections(st), bump: map[string]int64{},
		roomTypes: cache.ExpireWhenIdle(cache.NewLRU[string, *string](o.roomTypesBytes)), threadSubs: threadSubs}
	if o.bus != nil {
		o.bus.Subscribe("sliding-sync", s.deviceChanged, keys.TopicDevice)
	}
	return s
}

// deviceChanged ends the connections of a deleted device.
func (s *Service) deviceChanged(_ context.Context, c bus.Change) {
	if u, ok := c.(keys.DeviceUpdate); ok && u.Deleted {
		s.conns.forgetDevice(u.UserID, u.DeviceID)
	}
}

// Run persists connections until ctx ends, then what answers are still
// queued: the owner stops it after the last request and before the
// database closes.
func (s *Service) Run(ctx context.Context) error {
	if s.conns.w == nil {
		<-ctx.Done()
		return nil
	}
	return s.conns.w.Run(ctx)
}

// Sync answers a request, long-polling up to its timeout when the
// connection has nothing new.
func (s *Service) Sync(ctx context.Context, req Request) (*Response, error) {
	if req.Pos == "" {
		req.Pos = req.Body.Pos
	}
	key := connKey{user: req.UserID, device: req.DeviceID, id: req.ConnID}
	c, prev, ok, err := s.conns.lookup(ctx, key, req.Pos, time.Now())
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, unknownPos()
	}
	src := s.sync.Streams()
	if p := src.Presence; p != nil {
		done, err := p.SetFromSync(ctx, req.UserID, req.SetPresence)
		if err != nil {
			return nil, err
		}
		defer done()
	}
	n := s.sync.Notifier()
	deadline := time.NewTimer(req.Timeout)
	defer deadline.Stop()
	for {
		w := n.Register(req.UserID)
		resp, next, err := s.compute(ctx, req, prev)
		if err != nil || prev == nil || req.Timeout <= 0 || !resp.empty() {
			n.Unregister(w)
			if err != nil {
				return nil, err
			}
			resp.Pos = s.conns.store(key, c, prev, next, time.Now())
			return resp, nil
		}
		select {
		case <-w.C:
			n.Unregister(w)
		case <-deadline.C:
			n.Unregister(w)
			resp.Pos = s.conns.store(key, c, prev, next, time.Now())
			return resp, nil
		case <-ctx.Done():
			n.Unregister(w)
			return nil, ctx.Err()
		}
	}
}

// entry is one of the user's rooms as a list sees it.
type entry struct {
	store.RoomMembership
	bump int64
	// memberPos is the stream position of the membership event (not
	// joined rooms only).
	memberPos int64
	meta      *roomMeta // loaded when a filter or the answer needs it
}

// compute builds the answer to a request from a snapshot (nil: a new
// connection) and the snapshot it leaves.
func (s *Service) compute(ctx context.Context, req Request, prev *snapshot) (*Response, *snapshot, error) {
	upto := s.engine.Stream().Current()
	ms, err := s.sync.MembershipsAt(ctx, req.UserID, upto)
	if err != nil {
		return nil, nil, err
	}
	p := &pass{s: s, req: req, prev: prev, upto: upto, resp: newResponse(),
		next: &snapshot{upto: upto, counts: map[string]int{}, rooms: map[string]*sentRoom{}}}
	if prev != nil {
		p.after = prev.upto
		for id, r := range prev.rooms {
			p.next.rooms[id] = r
		}
	}
	if ad := s.sync.Streams().AccountData; ad != nil {
		if p.ignored, err = ad.IgnoredUsers(ctx, req.UserID); err != nil {
			return nil, nil, err
		}
	}
	if ms, err = s.sync.InvitesShown(ctx, req.UserID, p.ignored, ms); err != nil {
		return nil, nil, err
	}
	entries, err := s.entries(ctx, ms, upto, prev)
	if err != nil {
		return nil, nil, err
	}
	p.entries = entries
	if err := p.lists(ctx, entries); err != nil {
		return nil, nil, err
	}
	for roomID, cfg := range req.RoomSubscriptions {
		if err := p.subscribe(ctx, entries, roomID, cfg); err != nil {
			return nil, nil, err
		}
	}
	if err := p.rooms(ctx); err != nil {
		return nil, nil, err
	}
	if err := p.extensions(ctx); err != nil {
		return nil, nil, err
	}
	return p.resp, p.next, nil
}

// entries are the rooms the user is joined to, invited to or knocked
// on, most recently bumped first.
func (s *Service) entries(ctx context.Context, ms []store.RoomMembership, upto int64, prev *snapshot) ([]*entry, error) {
	var out []*entry
	var stripped []int64
	for _, m := range ms {
		switch m.Membership {
		case spec.Join:
			out = append(out, &entry{RoomMembership: m})
		case spec.Invite, spec.Knock:
			out = append(out, &entry{RoomMembership: m})
			stripped = append(stripped, m.EventNID)
		case spec.Leave, spec.Ban:
			// A room the connection has as joined, invited or knocked is
			// listed once more with the leave, so that the client sees it
			// go (as Synapse lists rooms left since the pos).
			if prev == nil {
				continue
			}
			if r := prev.rooms[m.RoomID]; r != nil && r.membership != spec.Leave && r.membership != spec.Ban {
				out = append(out, &entry{RoomMembership: m})
				stripped = append(stripped, m.EventNID)
			}
		}
	}
	// An invite, knock or leave is bumped by the membership event itself.
	evs, err := s.engine.EventsByNID(ctx, stripped)
	if err != nil {
		return nil, err
	}
	pos := make(map[int64]int64, len(evs))
	for _, ev := range evs {
		pos[ev.NID] = ev.StreamPos
	}
	if err := s.bumpStamps(ctx, out, upto); err != nil {
		return nil, err
	}
	for _, e := range out {
		if e.Membership != spec.Join {
			e.bump = pos[e.EventNID]
			e.memberPos = pos[e.EventNID]
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].bump != out[j].bump {
			return out[i].bump > out[j].bump
		}
		return out[i].RoomID < out[j].RoomID
	})
	return out, nil
}
