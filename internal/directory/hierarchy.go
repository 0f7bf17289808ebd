package directory

import (
	"context"
	"encoding/json"
	"slices"
	"sort"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/cache"
	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
)

// The space hierarchy across servers (client-server spec "Spaces",
// GET /hierarchy; MSC3266 room summaries), as Synapse's
// RoomSummaryHandler: rooms this server is in are described from their
// state; the others are asked of the servers their m.space.child event
// names (federation GET /hierarchy), and shown when the user may see
// them by the answer's join rule, history visibility and allowed rooms.

// Remote asks another server for a room's hierarchy entry, its children
// and the children that server will not describe to this one.
type Remote interface {
	RoomHierarchy(ctx context.Context, server, roomID string, suggestedOnly bool) (*RemoteHierarchy, error)
}

// RemoteHierarchy is a federation /hierarchy answer.
type RemoteHierarchy struct {
	Room                 HierarchyRoom   `json:"room"`
	Children             []HierarchyRoom `json:"children"`
	InaccessibleChildren []string        `json:"inaccessible_children"`
}

const (
	// remoteCacheTTL and remoteCacheSize are Synapse's
	// get_room_hierarchy_cache: answers are kept five minutes, at most
	// a thousand of them.
	remoteCacheTTL  = 5 * time.Minute
	remoteCacheSize = 1000
	// maxChildrenPerRoom bounds how many children of one room a walk
	// follows (Synapse's MAX_ROOMS_PER_SPACE), so that a remote answer
	// with thousands of children costs no more than a page.
	maxChildrenPerRoom = 50
	// maxRemoteFetches bounds the servers one walk or summary asks.
	maxRemoteFetches = 50
)

type remoteKey struct {
	roomID    string
	suggested bool
}

type remoteAnswer struct {
	resp *RemoteHierarchy
	at   time.Time
}

// Spaces walks space hierarchies and summarises rooms, asking other
// servers for rooms this one is not in.
type Spaces struct {
	dir        *Service
	serverName string
	remote     Remote // nil when federation is off
	cache      *cache.LRU[remoteKey, remoteAnswer]
	now        func() time.Time
}

// NewSpaces makes the service; remote may be nil.
func NewSpaces(dir *Service, serverName string, remote Remote) *Spaces {
	return &Spaces{dir: dir, serverName: serverName, remote: remote,
		cache: cache.NewLRU[remoteKey, remoteAnswer](remoteCacheSize), now: time.Now}
}

// HierarchyRequest is a page of a hierarchy walk: the rooms after the
// first Skip, at most Limit of them; MaxDepth < 0 for no limit.
type HierarchyRequest struct {
	Root, UserID  string
	SuggestedOnly bool
	MaxDepth      int
	Skip, Limit   int
	// Admin walks as a server admin (Synapse's admin hierarchy): every
	// room this server knows, no visibility check, no other server asked.
	Admin bool
}

// childRef is a child of a room the walk goes to next, with the servers
// its m.space.child event names.
type childRef struct {
	roomID string
	via    []string
}

// walk holds what a walk learnt from other servers: rooms described as
// another room's children (Synapse's children_room_entries), rooms
// their server will not describe, servers that did not answer (not
// asked again: a space of fifty rooms on a server that is down would
// otherwise wait fifty timeouts), and how many requests were made.
type walk struct {
	req          HierarchyRequest
	known        map[string]HierarchyRoom
	inaccessible map[string]bool
	down         map[string]bool
	fetches      int
}

// Hierarchy walks a space depth first from its root, as Synapse's
// _get_room_hierarchy: children in the spec's order, each room once,
// only rooms the user may see (their children are not walked either).
// The root must be a room this server knows and the user may see. It
// returns the page's rooms and whether a room follows them.
func (s *Spaces) Hierarchy(ctx context.Context, req HierarchyRequest) ([]HierarchyRoom, bool, error) {
	root, err := s.walkLocal(ctx, req.Root, req)
	if err != nil {
		return nil, false, err
	}
	if root == nil {
		// Unknown and hidden rooms alike, so that neither is told apart.
		return nil, false, mxerr.Forbidden("You are not allowed to view this room")
	}
	w := &walk{req: req, known: map[string]HierarchyRoom{}, inaccessible: map[string]bool{}}
	type queued struct {
		ref   childRef
		depth int
	}
	stack := []queued{{childRef{roomID: req.Root}, 0}}
	seen := map[string]bool{}
	emitted := 0
	page := []HierarchyRoom{}
	for len(stack) > 0 {
		e := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[e.ref.roomID] || w.inaccessible[e.ref.roomID] {
			continue
		}
		seen[e.ref.roomID] = true
		walkChildren := req.MaxDepth < 0 || e.depth < req.MaxDepth
		entry, children, err := s.entry(ctx, w, e.ref, walkChildren)
		if err != nil {
			return nil, false, err
		}
		if entry == nil {
			continue
		}
		if emitted >= req.Skip+req.Limit {
			return page, true, nil // one room beyond this page exists
		}
		if emitted >= req.Skip {
			page = append(page, *entry)
		}
		emitted++
		if walkChildren {
			for i := len(children) - 1; i >= 0; i-- {
				if !seen[children[i].roomID] {
					stack = append(stack, queued{children[i], e.depth + 1})
				}
			}
		}
	}
	return page, false, nil
}

// entry describes one room of a walk and lists its children: from its
// state when this server is in it, else from another server's answer,
// else from what this server still knows of it (a room it left). It is
// nil when the room cannot be described or the user may not see it.
func (s *Spaces) entry(ctx context.Context, w *walk, ref childRef, withChildren bool) (*HierarchyRoom, []childRef, error) {
	if s.remote != nil && !w.req.Admin && !s.local(ctx, ref.roomID) {
		if entry, found := s.remoteEntry(ctx, w, ref, withChildren); found {
			if entry == nil {
				return nil, nil, nil
			}
			visible, err := s.remoteVisible(ctx, entry.Summary, w.req.UserID)
			if err != nil || !visible {
				return nil, nil, err
			}
			return entry, childRefs(entry.ChildrenState, w.req.SuggestedOnly), nil
		}
	}
	d, err := s.walkLocal(ctx, ref.roomID, w.req)
	if err != nil || d == nil {
		return nil, nil, err
	}
	var evs []*rooms.Event
	if d.Summary.RoomType == "m.space" {
		if evs, err = s.dir.SpaceChildren(ctx, d.State, w.req.SuggestedOnly); err != nil {
			return nil, nil, err
		}
	}
	entry := NewHierarchyRoom(d, evs)
	return &entry, childRefs(entry.ChildrenState, false), nil
}

// remoteEntry is a room's entry as other servers describe it: as a child
// in an answer about its parent, or from its own hierarchy, which a
// space needs when the walk goes below it (an entry as a child comes
// without its children). found is false when no server described it.
func (s *Spaces) remoteEntry(ctx context.Context, w *walk, ref childRef, withChildren bool) (entry *HierarchyRoom, found bool) {
	known, ok := w.known[ref.roomID]
	if ok && !(withChildren && known.RoomType == "m.space") {
		return withRoomID(known, ref.roomID), true
	}
	resp := s.fetch(ctx, w, ref)
	if resp == nil {
		if ok {
			return withRoomID(known, ref.roomID), true
		}
		return nil, false
	}
	for _, id := range resp.InaccessibleChildren {
		w.inaccessible[id] = true
	}
	for i, ch := range resp.Children {
		if i >= maxChildrenPerRoom {
			break
		}
		if _, have := w.known[ch.RoomID]; !have && ch.RoomID != "" {
			w.known[ch.RoomID] = ch
		}
	}
	return withRoomID(resp.Room, ref.roomID), true
}

func withRoomID(e HierarchyRoom, roomID string) *HierarchyRoom {
	e.RoomID = roomID
	if e.ChildrenState == nil {
		e.ChildrenState = []ChildState{}
	}
	return &e
}

// local reports whether this server is in a room, so that its own state
// describes it. It reads the materialised membership, not the state's
// member events, which a walk of large rooms would otherwise load.
func (s *Spaces) local(ctx context.Context, roomID string) bool {
	servers, err := s.dir.store.JoinedServers(ctx, roomID)
	return err == nil && slices.Contains(servers, s.serverName)
}

// walkLocal describes a room of a walk from this server's state: as
// visibleLocal, or for an admin walk any room this server knows.
func (s *Spaces) walkLocal(ctx context.Context, roomID string, req HierarchyRequest) (*Room, error) {
	if !req.Admin {
		return s.visibleLocal(ctx, roomID, req.UserID)
	}
	d, err := s.dir.Describe(ctx, roomID)
	if _, ok := mxerr.As(err); ok {
		return nil, nil
	}
	return d, err
}

// visibleLocal describes a room from this server's state; nil when the
// server does not know it or the user may not see it.
func (s *Spaces) visibleLocal(ctx context.Context, roomID, userID string) (*Room, error) {
	d, err := s.dir.Describe(ctx, roomID)
	if err != nil {
		if _, ok := mxerr.As(err); ok {
			return nil, nil
		}
		return nil, err
	}
	if _, ok, err := s.dir.UserMayView(ctx, d, userID); err != nil || !ok {
		return nil, err
	}
	return d, nil
}

// fetch asks the servers a child event names, in turn, for a room's
// hierarchy; answers are cached. nil when none answered.
func (s *Spaces) fetch(ctx context.Context, w *walk, ref childRef) *RemoteHierarchy {
	key := remoteKey{ref.roomID, w.req.SuggestedOnly}
	if a, ok := s.cache.Get(key); ok && s.now().Sub(a.at) < remoteCacheTTL {
		return a.resp
	}
	for _, server := range ref.via {
		if w.fetches >= maxRemoteFetches {
			return nil
		}
		if server == s.serverName || w.down[server] || config.ValidateServerName(server) != nil {
			continue
		}
		w.fetches++
		resp, err := s.remote.RoomHierarchy(ctx, server, ref.roomID, w.req.SuggestedOnly)
		// A refusal (4xx) is about the room; anything else about the server.
		if me, ok := mxerr.As(err); err != nil && (!ok || me.Status >= 500) {
			if w.down == nil {
				w.down = map[string]bool{}
			}
			w.down[server] = true
		}
		// Synapse's get_room_hierarchy refuses an answer about another
		// room than the one asked for.
		if err != nil || resp == nil || resp.Room.RoomID != ref.roomID {
			continue
		}
		resp = boundAnswer(resp)
		s.cache.Put(key, remoteAnswer{resp: resp, at: s.now()})
		return resp
	}
	return nil
}

// childRefs lists the children an entry's m.space.child events name, in
// the spec's order, with their via servers; only suggested ones when
// asked (another server's answer may not have filtered them).
func childRefs(children []ChildState, suggestedOnly bool) []childRef {
	type child struct {
		ref childRef
		key childOrder
	}
	var kept []child
	for _, ch := range children {
		if ch.Type != "m.space.child" || ch.StateKey == "" {
			continue
		}
		key, via, ok := parseChild(ch.Content, ch.OriginServerTS, ch.StateKey, suggestedOnly)
		if !ok {
			continue
		}
		kept = append(kept, child{childRef{roomID: ch.StateKey, via: via}, key})
		if len(kept) >= maxChildrenPerRoom {
			break
		}
	}
	sort.SliceStable(kept, func(i, j int) bool { return kept[i].key.less(kept[j].key) })
	out := make([]childRef, len(kept))
	for i, ch := range kept {
		out[i] = ch.ref
	}
	return out
}

// childOrder is what orders a space's children (spec "Ordering of
// children within a space"): a valid order string first,
// lexicographically, then origin_server_ts, then the room ID.
type childOrder struct {
	order    string
	hasOrder bool
	ts       int64
	roomID   string
}

func (x childOrder) less(y childOrder) bool {
	if x.hasOrder != y.hasOrder {
		return x.hasOrder
	}
	if x.hasOrder && x.order != y.order {
		return x.order < y.order
	}
	if x.ts != y.ts {
		return x.ts < y.ts
	}
	return x.roomID < y.roomID
}

// parseChild reads an m.space.child content: a child counts only with a
// via of strings; ok is false for one that does not (or is not suggested
// when only suggested ones are asked for).
func parseChild(content []byte, ts int64, roomID string, suggestedOnly bool) (childOrder, []string, bool) {
	var c struct {
		Via       []json.RawMessage `json:"via"`
		Order     json.RawMessage   `json:"order"`
		Suggested json.RawMessage   `json:"suggested"`
	}
	if json.Unmarshal(content, &c) != nil || len(c.Via) == 0 {
		return childOrder{}, nil, false
	}
	via := make([]string, 0, len(c.Via))
	for _, v := range c.Via {
		var s string
		if json.Unmarshal(v, &s) != nil {
			return childOrder{}, nil, false
		}
		via = append(via, s)
	}
	if suggestedOnly && string(c.Suggested) != "true" {
		return childOrder{}, nil, false
	}
	key := childOrder{ts: ts, roomID: roomID}
	if json.Unmarshal(c.Order, &key.order) == nil && validOrder(key.order) {
		key.hasOrder = true
	}
	return key, via, true
}

// RoomSummary describes a room to a user (MSC3266 /room_summary, spec
// v1.15): from this server's state when it is in the room, else from
// the hierarchy of one of the via servers (Synapse's get_room_summary),
// else from what this server still knows of it. M_NOT_FOUND when the
// room is unknown or the user may not see it. It also returns the
// user's membership ("" for none).
func (s *Spaces) RoomSummary(ctx context.Context, roomID, userID string, via []string) (Summary, string, error) {
	notFound := mxerr.NotFound("Room not found or is not accessible")
	if s.remote != nil && !s.local(ctx, roomID) {
		if _, err := spec.NewRoomID(roomID); err == nil {
			w := &walk{req: HierarchyRequest{Root: roomID, UserID: userID, SuggestedOnly: true}}
			// Before room version 12 the room ID names a server that
			// was in the room; Myelin's joins try it last too.
			if server := roomIDServer(roomID); server != "" {
				via = append(append([]string{}, via...), server)
			}
			if resp := s.fetch(ctx, w, childRef{roomID: roomID, via: via}); resp != nil {
				sum := resp.Room.Summary
				sum.RoomID = roomID // what the answer is about, whatever it says
				visible, err := s.remoteVisible(ctx, sum, userID)
				if err != nil {
					return Summary{}, "", err
				}
				if !visible {
					return Summary{}, "", notFound
				}
				membership := ""
				if userID != "" {
					if membership, err = s.dir.rooms.MembershipOf(ctx, roomID, userID); err != nil {
						return Summary{}, "", err
					}
				}
				return sum, membership, nil
			}
		}
	}
	d, err := s.dir.Describe(ctx, roomID)
	if err != nil {
		if _, ok := mxerr.As(err); ok {
			return Summary{}, "", notFound
		}
		return Summary{}, "", err
	}
	membership, ok, err := s.dir.UserMayView(ctx, d, userID)
	if err != nil {
		return Summary{}, "", err
	}
	if !ok {
		return Summary{}, "", notFound
	}
	return d.Summary, membership, nil
}

// roomIDServer is the part of a room ID after its first colon ("" for
// room IDs without one, as in version 12).
func roomIDServer(roomID string) string {
	for i := 0; i < len(roomID); i++ {
		if roomID[i] == ':' {
			return roomID[i+1:]
		}
	}
	return ""
}
