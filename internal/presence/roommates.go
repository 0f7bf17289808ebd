package presence

import (
	"context"
	"sync"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/cache"
	"github.com/myelin-chat/myelin/internal/rooms"
)

// Bounds of the roommate caches, in member-list entries (a user ID and
// its map or slice slot, some 60-90 bytes each): about 20 MiB at most
// together, for a small box. They hold the rooms of the users who poll
// and those rooms' members, so they fill with what is active; a server
// whose pollers' rooms exceed them loads member lists again, one query
// per room, as every poll did before the caches.
const (
	roomsOfCap = 100_000
	membersCap = 200_000
)

// roommates answers whether two users share a joined room from memory:
// the rooms a viewer is joined to, and who is joined to each room, each
// loaded once from current state and dropped when a state event in the
// room is heard of. Asking the database per change, per woken /sync,
// costs what the whole server does (see recent).
type roommates struct {
	st Store

	mu sync.Mutex
	// gen counts invalidations, so that a load racing one is not kept.
	gen     uint64
	roomsOf *cache.LRU[string, []string]
	members *cache.LRU[string, map[string]struct{}]
}

func newRoommates(st Store) *roommates {
	return &roommates{st: st, roomsOf: newRoomsOf(), members: cache.NewLRU[string, map[string]struct{}](membersCap)}
}

func newRoomsOf() *cache.LRU[string, []string] { return cache.NewLRU[string, []string](roomsOfCap) }

// heard keeps the caches true to current state, which changes only
// with an accepted state event of the room (the engine publishes it once
// stored). A local user's membership event changes that user's row
// alone: local events extend the room's state without resolution. Any
// other state event may resolve state and so change anyone's membership
// in the room (a state reset), including a viewer's: every viewer's rooms
// are loaded again. Partial-state rooms completed get their full member
// lists the same way.
func (m *roommates) heard(_ context.Context, c bus.Change, serverName string) {
	switch c := c.(type) {
	case rooms.Notification:
		if c.Event == nil || c.Event.StateKey() == nil {
			return
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		m.gen++
		m.members.Remove(c.Event.RoomID().String())
		if c.Event.Type() == "m.room.member" && userServer(string(c.Event.SenderID())) == serverName {
			m.roomsOf.Remove(*c.Event.StateKey())
			return
		}
		m.roomsOf = newRoomsOf()
	case rooms.PartialStateCompleted:
		m.mu.Lock()
		defer m.mu.Unlock()
		m.gen++
		m.members.Remove(c.RoomID)
		m.roomsOf = newRoomsOf()
	}
}

// share reports whether viewer and user are both joined to some room.
func (m *roommates) share(ctx context.Context, viewer, user string) (bool, error) {
	ids, err := m.joinedRooms(ctx, viewer)
	if err != nil {
		return false, err
	}
	for _, roomID := range ids {
		in, err := m.joined(ctx, roomID)
		if err != nil {
			return false, err
		}
		if _, ok := in[user]; ok {
			return true, nil
		}
	}
	return false, nil
}

func (m *roommates) joinedRooms(ctx context.Context, userID string) ([]string, error) {
	m.mu.Lock()
	gen, cached := m.gen, m.roomsOf
	m.mu.Unlock()
	if ids, ok := cached.Get(userID); ok {
		return ids, nil
	}
	ms, err := m.st.MembershipsOf(ctx, userID, "join")
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(ms))
	for i, r := range ms {
		ids[i] = r.RoomID
	}
	m.mu.Lock()
	if m.gen == gen {
		m.roomsOf.PutCost(userID, ids, len(ids)+1)
	}
	m.mu.Unlock()
	return ids, nil
}

func (m *roommates) joined(ctx context.Context, roomID string) (map[string]struct{}, error) {
	if in, ok := m.members.Get(roomID); ok {
		return in, nil
	}
	gen := m.generation()
	ids, err := m.st.JoinedMembers(ctx, roomID)
	if err != nil {
		return nil, err
	}
	in := make(map[string]struct{}, len(ids))
	for _, u := range ids {
		in[u] = struct{}{}
	}
	m.mu.Lock()
	if m.gen == gen {
		m.members.PutCost(roomID, in, len(in)+1)
	}
	m.mu.Unlock()
	return in, nil
}

func (m *roommates) generation() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gen
}
