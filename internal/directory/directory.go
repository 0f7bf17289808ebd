// Package directory describes rooms as listings show them: the summary
// of a room, the published room directory and the children of spaces.
// The client API and the federation API both answer from it, so that a
// room is listed the same to a user and to another server.
package directory

import (
	"context"
	"encoding/json"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
	"github.com/myelin-chat/myelin/internal/store"
)

// Store is what listings read besides room state.
type Store interface {
	MemberCounts(ctx context.Context, roomID string) (joined, invited int64, err error)
	JoinedServers(ctx context.Context, roomID string) ([]string, error)
	PublishedRoomsIn(ctx context.Context, scope store.DirectoryScope) ([]store.PublishedRoom, error)
	SetAppServiceRoomListed(ctx context.Context, asID, networkID, roomID string, listed bool) error
	RoomPublished(ctx context.Context, roomID string) (bool, error)
	SetRoomPublished(ctx context.Context, roomID string, published bool) error
}

// Service answers listings from the room engine and the store.
type Service struct {
	rooms      *rooms.Engine
	store      Store
	reputation RoomScreen
	// userReputation hides rooms a user's own filter lists from them.
	userReputation UserRoomScreen
}

// New makes the listing service.
func New(engine *rooms.Engine, st Store, opts ...Option) *Service {
	s := &Service{rooms: engine, store: st}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Summary describes a room as the published room directory, the space
// hierarchy and the room summary do (PublishedRoomsChunk and
// RoomSummary in the spec).
type Summary struct {
	RoomID           string   `json:"room_id"`
	Name             string   `json:"name,omitempty"`
	Topic            string   `json:"topic,omitempty"`
	CanonicalAlias   string   `json:"canonical_alias,omitempty"`
	NumJoinedMembers int64    `json:"num_joined_members"`
	WorldReadable    bool     `json:"world_readable"`
	GuestCanJoin     bool     `json:"guest_can_join"`
	AvatarURL        string   `json:"avatar_url,omitempty"`
	JoinRule         string   `json:"join_rule,omitempty"`
	RoomType         string   `json:"room_type,omitempty"`
	RoomVersion      string   `json:"room_version,omitempty"`
	Encryption       string   `json:"encryption,omitempty"`
	AllowedRoomIDs   []string `json:"allowed_room_ids,omitempty"`
}

// Room is a room's summary with the current state it came from.
type Room struct {
	Summary Summary
	State   rooms.StateMap
}

// Describe summarises a room from its current state; M_NOT_FOUND for
// rooms the server does not know.
func (s *Service) Describe(ctx context.Context, roomID string) (*Room, error) {
	state, err := s.rooms.CurrentState(ctx, roomID)
	if err != nil {
		return nil, err
	}
	keys := []roommodel.StateKey{{Type: spec.MRoomCreate}, {Type: "m.room.name"}, {Type: "m.room.topic"},
		{Type: "m.room.canonical_alias"}, {Type: "m.room.avatar"}, {Type: spec.MRoomJoinRules},
		{Type: spec.MRoomHistoryVisibility}, {Type: rooms.GuestAccessEvent}, {Type: "m.room.encryption"}}
	evs, err := s.rooms.StateEvents(ctx, state, keys...)
	if err != nil {
		return nil, err
	}
	field := func(typ, key string) string {
		if ev := evs[roommodel.StateKey{Type: typ}]; ev != nil {
			return rooms.ContentString(ev.Content(), key)
		}
		return ""
	}
	sum := Summary{
		RoomID: roomID, Name: field("m.room.name", "name"), CanonicalAlias: field("m.room.canonical_alias", "alias"),
		AvatarURL: field("m.room.avatar", "url"), JoinRule: field(spec.MRoomJoinRules, "join_rule"),
		RoomType: field(spec.MRoomCreate, "type"), Encryption: field("m.room.encryption", "algorithm"),
		WorldReadable: field(spec.MRoomHistoryVisibility, "history_visibility") == rooms.WorldReadable,
	}
	if ev := evs[roommodel.StateKey{Type: rooms.GuestAccessEvent}]; ev != nil {
		sum.GuestCanJoin = rooms.GuestsCanJoin(ev.Content())
	}
	if sum.JoinRule == "" {
		sum.JoinRule = spec.Invite // the auth rules' default without a join rules event
	}
	if ev := evs[roommodel.StateKey{Type: "m.room.topic"}]; ev != nil {
		sum.Topic = plainTopic(ev.Content())
	}
	if create := evs[roommodel.StateKey{Type: spec.MRoomCreate}]; create != nil {
		sum.RoomVersion = string(create.Version())
	}
	if sum.JoinRule == spec.Restricted || sum.JoinRule == spec.KnockRestricted {
		var jr struct {
			Allow []struct {
				Type   string `json:"type"`
				RoomID string `json:"room_id"`
			} `json:"allow"`
		}
		if ev := evs[roommodel.StateKey{Type: spec.MRoomJoinRules}]; ev != nil && json.Unmarshal(ev.Content(), &jr) == nil {
			for _, al := range jr.Allow {
				if al.Type == "m.room_membership" && al.RoomID != "" {
					sum.AllowedRoomIDs = append(sum.AllowedRoomIDs, al.RoomID)
				}
			}
		}
	}
	if sum.NumJoinedMembers, _, err = s.store.MemberCounts(ctx, roomID); err != nil {
		return nil, err
	}
	return &Room{Summary: sum, State: state}, nil
}

// plainTopic is the plain-text topic of an m.room.topic content: topic,
// or else the text/plain entry of m.topic.
func plainTopic(content []byte) string {
	if t := rooms.ContentString(content, "topic"); t != "" {
		return t
	}
	var c struct {
		MTopic struct {
			MText []struct {
				Body     string `json:"body"`
				Mimetype string `json:"mimetype"`
			} `json:"m.text"`
		} `json:"m.topic"`
	}
	if json.Unmarshal(content, &c) != nil {
		return ""
	}
	for _, t := range c.MTopic.MText {
		if t.Mimetype == "" || t.Mimetype == "text/plain" {
			return t.Body
		}
	}
	return ""
}

// PublicRoomsQuery is a /publicRooms request, from the query string (GET)
// or the body (POST), of the client or the federation API.
type PublicRoomsQuery struct {
	Limit  *int   `json:"limit"`
	Since  string `json:"since"`
	Filter *struct {
		GenericSearchTerm string    `json:"generic_search_term"`
		RoomTypes         []*string `json:"room_types"`
	} `json:"filter"`
	IncludeAllNetworks   bool   `json:"include_all_networks"`
	ThirdPartyInstanceID string `json:"third_party_instance_id"`
	// Viewer is the user asking ("" for an anonymous caller or another
	// server): the rooms their own reputation filter lists are left out.
	Viewer string `json:"-"`
}

// PublicRoomsQueryFromURL reads a GET /publicRooms query string, of the
// client or the federation API.
func PublicRoomsQueryFromURL(q url.Values) (PublicRoomsQuery, error) {
	req := PublicRoomsQuery{Since: q.Get("since"), ThirdPartyInstanceID: q.Get("third_party_instance_id"),
		IncludeAllNetworks: q.Get("include_all_networks") == "true"}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil {
			return PublicRoomsQuery{}, mxerr.InvalidParam("limit must be an integer")
		}
		req.Limit = &n
	}
	return req, nil
}

// PublicRoomsResponse is a page of the published rooms.
type PublicRoomsResponse struct {
	Chunk     []Summary `json:"chunk"`
	NextBatch string    `json:"next_batch,omitempty"`
	PrevBatch string    `json:"prev_batch,omitempty"`
	Total     int       `json:"total_room_count_estimate"`
}

// PublicRooms lists the published rooms, as Synapse does: only rooms
// with joined members whose join rule is public or knockable or whose
// history is world-readable, the largest first. Paging tokens are
// offsets into that order.
func (s *Service) PublicRooms(ctx context.Context, req PublicRoomsQuery) (PublicRoomsResponse, error) {
	resp := PublicRoomsResponse{Chunk: []Summary{}}
	if req.IncludeAllNetworks && req.ThirdPartyInstanceID != "" {
		return resp, mxerr.InvalidParam("Can only use include_all_networks or third_party_instance_id")
	}
	offset := 0
	if req.Since != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(req.Since, "o"))
		if !strings.HasPrefix(req.Since, "o") || err != nil || n < 0 {
			return resp, mxerr.InvalidParam("Invalid since token")
		}
		offset = n
	}
	scope, err := directoryScope(req)
	if err != nil {
		return resp, err
	}
	listed, err := s.listed(ctx, scope)
	if err != nil {
		return resp, err
	}
	if req.Viewer != "" && s.userReputation != nil {
		kept := listed[:0]
		for _, sum := range listed {
			if !s.userReputation.HidesRoomFor(ctx, req.Viewer, sum.RoomID) {
				kept = append(kept, sum)
			}
		}
		listed = kept
	}
	resp.Total = len(listed)
	if req.Filter != nil {
		kept := listed[:0]
		for _, sum := range listed {
			if matchesPublicFilter(sum, req.Filter.GenericSearchTerm, req.Filter.RoomTypes) {
				kept = append(kept, sum)
			}
		}
		listed = kept
	}
	var start, end int
	start, end, resp.PrevBatch, resp.NextBatch = page(len(listed), offset, req.Limit)
	resp.Chunk = append(resp.Chunk, listed[start:end]...)
	return resp, nil
}

// page is the part [start, end) of n rooms a since offset and limit ask
// for, with the tokens of the pages before and after it. The limit is
// the client's: offset+limit must not overflow.
func page(n, offset int, limit *int) (start, end int, prev, next string) {
	start, end = min(offset, n), n
	if limit != nil && *limit > 0 {
		l := *limit
		end = start + min(l, n-start)
		if start > 0 {
			prev = "o" + strconv.Itoa(max(0, start-l))
		}
		if end < n {
			next = "o" + strconv.Itoa(end)
		}
	}
	return start, end, prev, next
}

// listed is every published room a directory shows, in its order.
func (s *Service) listed(ctx context.Context, scope store.DirectoryScope) ([]Summary, error) {
	published, err := s.store.PublishedRoomsIn(ctx, scope)
	if err != nil {
		return nil, err
	}
	listed := make([]Summary, 0, len(published))
	for _, p := range published {
		d, err := s.Describe(ctx, p.RoomID)
		if err != nil {
			if _, ok := mxerr.As(err); ok {
				continue
			}
			return nil, err
		}
		sum := d.Summary
		if sum.NumJoinedMembers == 0 || !sum.OpenToAll() || s.hiddenRoom(ctx, p.RoomID) {
			continue
		}
		sum.RoomVersion, sum.Encryption, sum.AllowedRoomIDs = "", "", nil // not part of a directory entry
		listed = append(listed, sum)
	}
	return listed, nil
}

// matchesPublicFilter applies a /publicRooms filter: the search term
// against the name, topic, canonical alias and room ID (case-insensitive),
// and the room types (nil standing for rooms without a type).
func matchesPublicFilter(s Summary, term string, types []*string) bool {
	if term = strings.ToLower(strings.TrimSpace(term)); term != "" {
		found := false
		for _, f := range []string{s.Name, s.Topic, s.CanonicalAlias, s.RoomID} {
			if strings.Contains(strings.ToLower(f), term) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	if len(types) == 0 {
		return true
	}
	for _, t := range types {
		if t == nil && s.RoomType == "" || t != nil && *t == s.RoomType {
			return true
		}
	}
	return false
}

// HierarchyRoom is an entry of a space hierarchy: a room's summary and
// its m.space.child events.
type HierarchyRoom struct {
	Summary
	ChildrenState []ChildState `json:"children_state"`
}

// ChildState is an m.space.child event in stripped form, with its
// origin_server_ts.
type ChildState struct {
	Type           string          `json:"type"`
	StateKey       string          `json:"state_key"`
	Content        json.RawMessage `json:"content"`
	Sender         string          `json:"sender"`
	OriginServerTS int64           `json:"origin_server_ts"`
}

// NewHierarchyRoom is a room's hierarchy entry, with its children's
// m.space.child events.
func NewHierarchyRoom(d *Room, children []*rooms.Event) HierarchyRoom {
	entry := HierarchyRoom{Summary: d.Summary, ChildrenState: make([]ChildState, 0, len(children))}
	for _, ch := range children {
		entry.ChildrenState = append(entry.ChildrenState, ChildState{Type: ch.Type(), StateKey: *ch.StateKey(),
			Content: json.RawMessage(ch.Content()), Sender: ch.Sender(), OriginServerTS: int64(ch.OriginServerTS())})
	}
	return entry
}

// SpaceChildren lists a space's m.space.child events with a valid via,
// in the spec's order: a valid order string first (lexicographically),
// then by origin_server_ts, then by room ID.
func (s *Service) SpaceChildren(ctx context.Context, state rooms.StateMap, suggestedOnly bool) ([]*rooms.Event, error) {
	var keys []roommodel.StateKey
	for k := range state {
		if k.Type == "m.space.child" {
			keys = append(keys, k)
		}
	}
	evs, err := s.rooms.StateEvents(ctx, state, keys...)
	if err != nil {
		return nil, err
	}
	type child struct {
		ev  *rooms.Event
		key childOrder
	}
	var kept []child
	for _, ev := range evs {
		key, _, ok := parseChild(ev.Content(), int64(ev.OriginServerTS()), *ev.StateKey(), suggestedOnly)
		if ok {
			kept = append(kept, child{ev, key})
		}
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i].key.less(kept[j].key) })
	out := make([]*rooms.Event, len(kept))
	for i, ch := range kept {
		out[i] = ch.ev
	}
	return out, nil
}

// validOrder: at most 50 characters, all between \x20 and \x7E.
func validOrder(s string) bool {
	if len(s) > 50 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7E {
			return false
		}
	}
	return true
}
