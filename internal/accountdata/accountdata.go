// Package accountdata owns users' account data: global and per-room
// entries a client stores on its user's behalf (spec "Client Config"),
// room tags (m.tag), direct chats (m.direct) and the ignore list
// (m.ignored_user_list). Every change takes a position in the event
// stream, so that /sync delivers it with the same tokens as events.
package accountdata

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/cache"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// Types with a meaning to the server.
const (
	TypeTag         = "m.tag"
	TypeIgnoredUser = "m.ignored_user_list"
	TypeDirect      = "m.direct"
	TypeFullyRead   = "m.fully_read"
	TypePushRules   = "m.push_rules"
)

// Store is the storage account data needs.
type Store interface {
	PutAccountData(ctx context.Context, userID, roomID, typ, content string, pos int64) error
	GetAccountData(ctx context.Context, userID, roomID, typ string) (string, error)
	AccountDataChanges(ctx context.Context, userID string, after, upto int64) ([]store.AccountData, error)
	RoomAccountData(ctx context.Context, userID string, roomIDs []string, upto int64) ([]store.AccountData, error)
}

// Event is an account data event as /sync and the API deliver it.
type Event struct {
	Type    string          `json:"type"`
	Content json.RawMessage `json:"content"`
}

// Renderer turns a server-managed global type's stored content (nil
// when none is stored) into what clients see.
type Renderer func(ctx context.Context, userID string, stored json.RawMessage) (json.RawMessage, error)

// Service is the account data service.
type Service struct {
	store  Store
	stream *rooms.StreamGen
	// marks are each user's latest change, so that /sync skips the query
	// for users whose account data did not change.
	marks *cache.Marks
	bus   bus.Bus

	// renderers are the global types the server manages itself (see
	// Manage); clients cannot write them.
	renderers map[string]Renderer

	// locks serialise read-modify-write updates (tags) per user.
	lockMu sync.Mutex
	locks  map[string]*userLock

	// ignored caches users' ignore lists, consulted for every event
	// that might notify them. ignoredMu orders loads against
	// invalidation, so that a load racing a change cannot cache the old
	// list after the change dropped it.
	ignoredMu sync.Mutex
	ignored   *cache.LRU[string, map[string]bool]
}

type userLock struct {
	mu   sync.Mutex
	refs int
}

// Changed is published, once the change is readable at the stream's
// current position, for a user whose account data changed, to wake
// their /sync.
type Changed struct {
	UserID string `json:"user_id"`
	// RoomID and Type name the entry, so that a listener caching one
	// type (push rules) skips the others (read markers, often).
	RoomID string `json:"room_id,omitempty"`
	Type   string `json:"type,omitempty"`
}

// TopicChanged is the topic of Changed.
const TopicChanged = "accountdata.changed"

// Topic implements bus.Change.
func (Changed) Topic() string { return TopicChanged }

// New makes the service; positions come from stream, the room engine's.
// It publishes Changed on b.
func New(st Store, stream *rooms.StreamGen, b bus.Bus, opts ...Option) *Service {
	o := options{ignoredBytes: defaultIgnoredBytes}
	for _, opt := range opts {
		opt(&o)
	}
	return &Service{store: st, stream: stream, bus: b, renderers: map[string]Renderer{}, locks: map[string]*userLock{},
		ignored: cache.ExpireWhenIdle(cache.NewLRU[string, map[string]bool](o.ignoredBytes)), marks: cache.NewMarks(stream.Current())}
}

// Manage makes a global type server-managed: clients cannot PUT it, and
// it is read through render (also in every initial sync, stored or not).
// Call before serving.
func (s *Service) Manage(typ string, render Renderer) { s.renderers[typ] = render }

// Managed reports whether the server manages a type in a scope: m.fully_read
// per room (set by read markers), and the Manage'd global types (and
// their per-room spelling, which has no meaning).
func (s *Service) Managed(roomID, typ string) bool {
	if roomID != "" && typ == TypeFullyRead {
		return true
	}
	_, ok := s.renderers[typ]
	return ok
}

// Put stores an entry (roomID "" for global) without checking who may
// set it: the API checks that; read markers and push rules write their
// managed types through here.
func (s *Service) Put(ctx context.Context, userID, roomID, typ string, content json.RawMessage) error {
	pos := s.stream.Next()
	if err := s.store.PutAccountData(ctx, userID, roomID, typ, string(content), pos); err != nil {
		s.stream.Abandon(pos)
		return err
	}
	s.marks.Note(userID, pos)
	s.stream.Done(pos)
	if roomID == "" && typ == TypeIgnoredUser {
		s.ignoredMu.Lock()
		s.ignored.Remove(userID)
		s.ignoredMu.Unlock()
	}
	s.changed(ctx, Changed{UserID: userID, RoomID: roomID, Type: typ}, pos)
	return nil
}

// changed publishes Changed once pos is readable: a position commits ahead
// of earlier ones still in flight, and a /sync woken before Current
// reaches pos would not find the change.
func (s *Service) changed(ctx context.Context, c Changed, pos int64) {
	if !s.stream.WaitReadable(ctx, pos) {
		// The change is stored; the next wake-up of the user's sync
		// finds it.
		return
	}
	s.bus.Publish(ctx, c)
}

// Get loads an entry as clients see it; M_NOT_FOUND if unset.
func (s *Service) Get(ctx context.Context, userID, roomID, typ string) (json.RawMessage, error) {
	raw, err := s.store.GetAccountData(ctx, userID, roomID, typ)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if render, ok := s.renderers[typ]; ok && roomID == "" {
		var stored json.RawMessage
		if err == nil {
			stored = json.RawMessage(raw)
		}
		return render(ctx, userID, stored)
	}
	if err != nil {
		return nil, mxerr.NotFound("Account data not found")
	}
	return json.RawMessage(raw), nil
}

// Stored loads an entry's stored content as is; nil if unset.
func (s *Service) Stored(ctx context.Context, userID, roomID, typ string) (json.RawMessage, error) {
	raw, err := s.store.GetAccountData(ctx, userID, roomID, typ)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return json.RawMessage(raw), nil
}

// Update replaces an entry by a function of its stored content (nil if
// unset), serialised per user so that concurrent updates are not lost.
func (s *Service) Update(ctx context.Context, userID, roomID, typ string, fn func(old json.RawMessage) (json.RawMessage, error)) error {
	unlock := s.lock(userID)
	defer unlock()
	old, err := s.Stored(ctx, userID, roomID, typ)
	if err != nil {
		return err
	}
	content, err := fn(old)
	if err != nil {
		return err
	}
	return s.Put(ctx, userID, roomID, typ, content)
}

func (s *Service) lock(userID string) func() {
	s.lockMu.Lock()
	l, ok := s.locks[userID]
	if !ok {
		l = &userLock{}
		s.locks[userID] = l
	}
	l.refs++
	s.lockMu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		s.lockMu.Lock()
		if l.refs--; l.refs == 0 {
			delete(s.locks, userID)
		}
		s.lockMu.Unlock()
	}
}

// Changes is the account data /sync delivers for positions in (after,
// upto]: global entries and per-room entries by room, each type once
// with its latest content. With after == 0 (an initial sync) the
// server-managed global types (m.push_rules) are always included.
func (s *Service) Changes(ctx context.Context, userID string, after, upto int64) (global []Event, rooms map[string][]Event, err error) {
	if after != 0 && s.marks.Unchanged(userID, after) {
		// Every woken /sync asks; most users' account data did not change.
		return nil, nil, nil
	}
	rows, err := s.store.AccountDataChanges(ctx, userID, after, upto)
	if err != nil {
		return nil, nil, err
	}
	global, rooms = []Event{}, map[string][]Event{}
	seen := map[string]bool{}
	for _, r := range rows {
		content := json.RawMessage(r.Content)
		if r.RoomID == "" {
			if render, ok := s.renderers[r.Type]; ok {
				if content, err = render(ctx, userID, content); err != nil {
					return nil, nil, fmt.Errorf("accountdata: %s: %w", r.Type, err)
				}
			}
			seen[r.Type] = true
			global = append(global, Event{Type: r.Type, Content: content})
			continue
		}
		rooms[r.RoomID] = append(rooms[r.RoomID], Event{Type: r.Type, Content: content})
	}
	if after == 0 {
		for typ, render := range s.renderers {
			if seen[typ] {
				continue
			}
			content, err := render(ctx, userID, nil)
			if err != nil {
				return nil, nil, fmt.Errorf("accountdata: %s: %w", typ, err)
			}
			global = append(global, Event{Type: typ, Content: content})
		}
	}
	return global, rooms, nil
}

// RoomData is all of a user's account data in some rooms, as of upto,
// by room: what a sliding sync connection gets of a room it is sent for
// the first time.
func (s *Service) RoomData(ctx context.Context, userID string, roomIDs []string, upto int64) (map[string][]Event, error) {
	out := map[string][]Event{}
	if len(roomIDs) == 0 {
		return out, nil
	}
	rows, err := s.store.RoomAccountData(ctx, userID, roomIDs, upto)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		out[r.RoomID] = append(out[r.RoomID], Event{Type: r.Type, Content: json.RawMessage(r.Content)})
	}
	return out, nil
}

// IgnoredUsers is the set of users userID ignores (m.ignored_user_list),
// for hiding their events and invites and for not notifying about them.
// The map is shared and must not be modified.
func (s *Service) IgnoredUsers(ctx context.Context, userID string) (map[string]bool, error) {
	if m, ok := s.ignored.Get(userID); ok {
		return m, nil
	}
	s.ignoredMu.Lock()
	defer s.ignoredMu.Unlock()
	raw, err := s.Stored(ctx, userID, "", TypeIgnoredUser)
	if err != nil {
		return nil, err
	}
	// Content the client stored badly ignores nobody, as in Synapse.
	var content struct {
		IgnoredUsers map[string]json.RawMessage `json:"ignored_users"`
	}
	_ = json.Unmarshal(raw, &content)
	m := make(map[string]bool, len(content.IgnoredUsers))
	for u := range content.IgnoredUsers {
		m[u] = true
	}
	s.ignored.PutCost(userID, m, cache.SetCost(len(userID), m))
	return m, nil
}
