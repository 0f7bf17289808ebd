// Package roomadmin is what a server admin may read and do to rooms
// through Synapse's admin API (/_synapse/admin/v1/rooms and friends): list
// and describe rooms, block them, shut them down and purge them (as
// background jobs), raise a user to room admin, trim forward
// extremities. The handlers are in internal/admin.
package roomadmin

import (
	"cmp"
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/accounts"
	"github.com/myelin-chat/myelin/internal/aliases"
	"github.com/myelin-chat/myelin/internal/directory"
	"github.com/myelin-chat/myelin/internal/membership"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// Store is the storage the room admin reads and changes.
type Store interface {
	AdminRooms(ctx context.Context, roomID, localSuffix string) ([]store.AdminRoom, error)
	LocalJoinedDevices(ctx context.Context, roomID string) (int64, error)
	LocallyForgotten(ctx context.Context, roomID, localSuffix string) (bool, error)
	BlockRoom(ctx context.Context, roomID, by string) error
	UnblockRoom(ctx context.Context, roomID string) error
	RoomBlocked(ctx context.Context, roomID string) (by string, blocked bool, err error)
	PurgeRoom(ctx context.Context, roomID string) (store.PurgedRoom, error)
	PurgeHistory(ctx context.Context, roomID string, before int64, localSuffix string) (store.PurgedRoom, error)
	ForgetRoom(ctx context.Context, userID, roomID string) error
	RedactableEventsOf(ctx context.Context, roomID, sender string, limit int) ([]string, error)
	SentInviteCount(ctx context.Context, sender string, fromTS int64) (int64, error)
	CumulativeJoinedRooms(ctx context.Context, userID string) (int64, error)
	// The background jobs (jobs.go).
	InsertTask(ctx context.Context, t store.TaskRow) error
	UpdateTask(ctx context.Context, t store.TaskRow) error
	Task(ctx context.Context, id string) (store.TaskRow, error)
	Tasks(ctx context.Context, q store.TaskQuery) ([]store.TaskRow, error)
	DeleteTasksBefore(ctx context.Context, ts int64) error
}

// Accounts tells local users from others and whether they exist.
type Accounts interface {
	LocalpartOf(userID string) (string, bool)
	User(ctx context.Context, localpart string) (accounts.User, error)
}

// Options are what New needs.
type Options struct {
	ServerName string
	Rooms      *rooms.Engine
	Store      Store
	Membership *membership.Service
	Aliases    *aliases.Service
	Directory  *directory.Service
	Accounts   Accounts
	// Federation resolves other servers' aliases for the admin join; nil
	// without federation (then rooms this server is not in are unknown).
	Federation Federation
	Log        *slog.Logger
}

// Federation is what the room admin asks of other servers.
type Federation interface {
	ResolveAlias(ctx context.Context, alias string) (roomID string, servers []string, err error)
}

// Service is the room admin.
type Service struct {
	o    Options
	jobs *Deletions
}

// New makes the service; its deletions (Deletions) run as a worker.
func New(o Options) *Service {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	s := &Service{o: o}
	s.jobs = newDeletions(s)
	return s
}

// Deletions is the worker that runs room deletions.
func (s *Service) Deletions() *Deletions { return s.jobs }

// Room is a room as the admin API describes it (Synapse's room list and
// room details). Nil pointers are JSON nulls.
type Room struct {
	RoomID             string  `json:"room_id"`
	Name               *string `json:"name"`
	CanonicalAlias     *string `json:"canonical_alias"`
	JoinedMembers      int64   `json:"joined_members"`
	JoinedLocalMembers int64   `json:"joined_local_members"`
	Version            string  `json:"version"`
	Creator            *string `json:"creator"`
	Encryption         *string `json:"encryption"`
	Federatable        bool    `json:"federatable"`
	Public             bool    `json:"public"`
	JoinRules          *string `json:"join_rules"`
	GuestAccess        *string `json:"guest_access"`
	HistoryVisibility  *string `json:"history_visibility"`
	StateEvents        int64   `json:"state_events"`
	RoomType           *string `json:"room_type"`
}

// Details is a room with what only the details endpoint shows.
type Details struct {
	Room
	Topic              *string `json:"topic"`
	Avatar             *string `json:"avatar"`
	JoinedLocalDevices int64   `json:"joined_local_devices"`
	Forgotten          bool    `json:"forgotten"`
}

func (s *Service) localSuffix() string { return ":" + s.o.ServerName }

// describe reads the fields of a room from its state events.
func describe(r store.AdminRoom) (Room, *string, *string) {
	out := Room{RoomID: r.RoomID, Version: r.Version, Public: r.Published, StateEvents: r.StateEvents,
		JoinedMembers: r.Joined, JoinedLocalMembers: r.LocalJoined, Federatable: true}
	content := func(typ string) (map[string]any, string) {
		var ev struct {
			Sender  string         `json:"sender"`
			Content map[string]any `json:"content"`
		}
		raw, ok := r.State[typ]
		if !ok || json.Unmarshal([]byte(raw), &ev) != nil {
			return nil, ""
		}
		return ev.Content, ev.Sender
	}
	str := func(typ, field string) *string {
		c, _ := content(typ)
		if v, ok := c[field].(string); ok {
			return &v
		}
		return nil
	}
	if c, sender := content("m.room.create"); c != nil || sender != "" {
		creator := sender
		if v, ok := c["creator"].(string); ok && v != "" {
			creator = v
		}
		if creator != "" {
			out.Creator = &creator
		}
		if f, ok := c["m.federate"].(bool); ok {
			out.Federatable = f
		}
		if t, ok := c["type"].(string); ok {
			out.RoomType = &t
		}
	}
	out.Name = str("m.room.name", "name")
	out.CanonicalAlias = str("m.room.canonical_alias", "alias")
	out.Encryption = str("m.room.encryption", "algorithm")
	out.JoinRules = str("m.room.join_rules", "join_rule")
	out.GuestAccess = str("m.room.guest_access", "guest_access")
	out.HistoryVisibility = str("m.room.history_visibility", "history_visibility")
	return out, str("m.room.topic", "topic"), str("m.room.avatar", "url")
}

// ListQuery selects a page of the room list.
type ListQuery struct {
	From, Limit int
	OrderBy     string // one of OrderBys; "" is name
	Backwards   bool   // dir=b
	Search      string // "" keeps all
	// Public and Empty keep only (true) or leave out (false) published
	// or memberless rooms; nil keeps both.
	Public, Empty *bool
}

// OrderBys are the list's orders, with whether each sorts ascending by
// default (Synapse's RoomSortOrder: counts and versions largest first).
var OrderBys = map[string]bool{
	"name": true, "alphabetical": true, "canonical_alias": true, "joined_members": false, "size": false,
	"joined_local_members": false, "version": false, "creator": true, "encryption": true, "federatable": true,
	"public": true, "join_rules": true, "guest_access": true, "history_visibility": true, "state_events": false,
}

// List is a page of rooms and how many match in all. Rooms are sorted
// by the order, then by room ID; null fields sort after every value in
// ascending order, as on PostgreSQL.
func (s *Service) List(ctx context.Context, q ListQuery) ([]Room, int, error) {
	rows, err := s.o.Store.AdminRooms(ctx, "", s.localSuffix())
	if err != nil {
		return nil, 0, err
	}
	list := make([]Room, 0, len(rows))
	search := strings.ToLower(q.Search)
	for _, row := range rows {
		r, _, _ := describe(row)
		if q.Search != "" && r.RoomID != q.Search && !containsFold(r.Name, search) && !containsFold(r.CanonicalAlias, search) {
			continue
		}
		if q.Public != nil && r.Public != *q.Public {
			continue
		}
		if q.Empty != nil && (r.JoinedMembers == 0) != *q.Empty {
			continue
		}
		list = append(list, r)
	}
	order := q.OrderBy
	if order == "" {
		order = "name"
	}
	asc, ok := OrderBys[order]
	if !ok {
		return nil, 0, mxerr.InvalidParam("Unknown value for order_by: %s", order)
	}
	if q.Backwards {
		asc = !asc
	}
	key := sortKey(order)
	slices.SortStableFunc(list, func(a, b Room) int {
		c := key(a, b)
		if c == 0 {
			c = strings.Compare(a.RoomID, b.RoomID)
		}
		if !asc {
			c = -c
		}
		return c
	})
	total := len(list)
	from, end := min(q.From, total), total
	if q.Limit < total-from { // no overflow with huge limits
		end = from + q.Limit
	}
	return list[from:end], total, nil
}

func containsFold(s *string, lowered string) bool {
	return s != nil && strings.Contains(strings.ToLower(*s), lowered)
}

// nullable compares optional strings, a null after every value.
func nullable(a, b *string) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return 1
	case b == nil:
		return -1
	}
	return strings.Compare(*a, *b)
}

func boolCmp(a, b bool) int {
	if a == b {
		return 0
	}
	if !a {
		return -1
	}
	return 1
}

func sortKey(order string) func(a, b Room) int {
	switch order {
	case "canonical_alias":
		return func(a, b Room) int { return nullable(a.CanonicalAlias, b.CanonicalAlias) }
	case "joined_members", "size":
		return func(a, b Room) int { return cmp.Compare(a.JoinedMembers, b.JoinedMembers) }
	case "joined_local_members":
		return func(a, b Room) int { return cmp.Compare(a.JoinedLocalMembers, b.JoinedLocalMembers) }
	case "version":
		return func(a, b Room) int { return strings.Compare(a.Version, b.Version) }
	case "creator":
		return func(a, b Room) int { return nullable(a.Creator, b.Creator) }
	case "encryption":
		return func(a, b Room) int { return nullable(a.Encryption, b.Encryption) }
	case "federatable":
		return func(a, b Room) int { return boolCmp(a.Federatable, b.Federatable) }
	case "public":
		return func(a, b Room) int { return boolCmp(a.Public, b.Public) }
	case "join_rules":
		return func(a, b Room) int { return nullable(a.JoinRules, b.JoinRules) }
	case "guest_access":
		return func(a, b Room) int { return nullable(a.GuestAccess, b.GuestAccess) }
	case "history_visibility":
		return func(a, b Room) int { return nullable(a.HistoryVisibility, b.HistoryVisibility) }
	case "state_events":
		return func(a, b Room) int { return cmp.Compare(a.StateEvents, b.StateEvents) }
	}
	return func(a, b Room) int { return nullable(a.Name, b.Name) }
}

// roomNotFound is Synapse's answer for a room it does not know.
func roomNotFound() error { return mxerr.NotFound("Room not found") }

// Details describes one room; M_NOT_FOUND if the server does not know it.
func (s *Service) Details(ctx context.Context, roomID string) (Details, error) {
	rows, err := s.o.Store.AdminRooms(ctx, roomID, s.localSuffix())
	if err != nil {
		return Details{}, err
	}
	if len(rows) == 0 {
		return Details{}, roomNotFound()
	}
	r, topic, avatar := describe(rows[0])
	d := Details{Room: r, Topic: topic, Avatar: avatar}
	if d.JoinedLocalDevices, err = s.o.Store.LocalJoinedDevices(ctx, roomID); err != nil {
		return Details{}, err
	}
	if d.Forgotten, err = s.o.Store.LocallyForgotten(ctx, roomID, s.localSuffix()); err != nil {
		return Details{}, err
	}
	return d, nil
}

// currentState is a known room's current state; M_NOT_FOUND otherwise.
func (s *Service) currentState(ctx context.Context, roomID string) (rooms.StateMap, error) {
	if _, err := s.o.Rooms.RoomVersion(ctx, roomID); err != nil {
		if me, ok := mxerr.As(err); ok && me.Code == "M_NOT_FOUND" {
			return nil, roomNotFound()
		}
		return nil, err
	}
	return s.o.Rooms.CurrentState(ctx, roomID)
}

// Members lists the room's joined members (Synapse's admin /members).
func (s *Service) Members(ctx context.Context, roomID string) ([]string, error) {
	state, err := s.currentState(ctx, roomID)
	if err != nil {
		return nil, err
	}
	return s.joined(ctx, state, false)
}

// joined lists the joined members of a state, only the local ones if
// localOnly.
func (s *Service) joined(ctx context.Context, state rooms.StateMap, localOnly bool) ([]string, error) {
	evs, err := s.o.Rooms.Members(ctx, state)
	if err != nil {
		return nil, err
	}
	out := []string{}
	for _, ev := range evs {
		m, _ := ev.Membership()
		if m != spec.Join || ev.StateKey() == nil {
			continue
		}
		if _, local := s.o.Accounts.LocalpartOf(*ev.StateKey()); localOnly && !local {
			continue
		}
		out = append(out, *ev.StateKey())
	}
	slices.Sort(out)
	return out, nil
}

// State is the room's current state events.
func (s *Service) State(ctx context.Context, roomID string) ([]*rooms.Event, error) {
	state, err := s.currentState(ctx, roomID)
	if err != nil {
		return nil, err
	}
	nids := make([]int64, 0, len(state))
	for _, nid := range state {
		nids = append(nids, nid)
	}
	slices.Sort(nids)
	return s.o.Rooms.EventsByNID(ctx, nids)
}

// Messages is a page of the room's timeline, every accepted event
// whatever the history visibility (see rooms.Engine.AdminTimeline).
func (s *Service) Messages(ctx context.Context, roomID string, from, to int64, limit int, backwards bool, keep func(*rooms.Event) bool) ([]*rooms.Event, int64, bool, error) {
	if _, err := s.currentState(ctx, roomID); err != nil {
		return nil, 0, false, err
	}
	return s.o.Rooms.AdminTimeline(ctx, roomID, from, to, s.o.Rooms.Stream().Current(), limit, backwards, keep)
}

// Block blocks or unblocks a room, known here or not.
func (s *Service) Block(ctx context.Context, roomID, by string, block bool) error {
	if block {
		return s.o.Store.BlockRoom(ctx, roomID, by)
	}
	return s.o.Store.UnblockRoom(ctx, roomID)
}

// Blocked reports whether a room is blocked and by whom.
func (s *Service) Blocked(ctx context.Context, roomID string) (string, bool, error) {
	return s.o.Store.RoomBlocked(ctx, roomID)
}

// Extremities lists a room's forward extremities.
func (s *Service) Extremities(ctx context.Context, roomID string) ([]rooms.Extremity, error) {
	if _, err := s.currentState(ctx, roomID); err != nil {
		return nil, err
	}
	return s.o.Rooms.ExtremityDetails(ctx, roomID)
}

// TrimExtremities deletes all forward extremities but the newest.
func (s *Service) TrimExtremities(ctx context.Context, roomID string) (int, error) {
	if _, err := s.currentState(ctx, roomID); err != nil {
		return 0, err
	}
	return s.o.Rooms.TrimExtremities(ctx, roomID)
}

// EventNear is the room's event closest to ts in one direction, whoever
// may see it (Synapse's admin timestamp_to_event).
func (s *Service) EventNear(ctx context.Context, roomID string, ts int64, backwards bool) (string, int64, error) {
	if _, err := s.currentState(ctx, roomID); err != nil {
		return "", 0, err
	}
	id, origin, ok, err := s.o.Rooms.FirstEventNear(ctx, roomID, ts, s.o.Rooms.Stream().Current(), backwards)
	if err != nil {
		return "", 0, err
	}
	if !ok {
		dir := "f"
		if backwards {
			dir = "b"
		}
		return "", 0, mxerr.NotFound("Unable to find event from %d in direction %s", ts, dir)
	}
	return id, origin, nil
}

// ResolveRoom turns a room ID or a local alias into a room ID.
func (s *Service) ResolveRoom(ctx context.Context, idOrAlias string) (string, error) {
	if strings.HasPrefix(idOrAlias, "#") {
		id, _, err := s.o.Aliases.Resolve(ctx, idOrAlias)
		return id, err
	}
	if !strings.HasPrefix(idOrAlias, "!") {
		return "", mxerr.InvalidParam("%s was not legal room ID or room alias", idOrAlias)
	}
	return idOrAlias, nil
}

// CurrentPos is the event stream's current position (where a backwards
// /messages page starts).
func (s *Service) CurrentPos() int64 { return s.o.Rooms.Stream().Current() }
