package presence

import (
	"context"
	"sync"
	"unique"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/cache"
	"github.com/myelin-chat/myelin/internal/rooms"
)

// Bound of the roommate cache, in room IDs: about 8 MiB at most, for a
// small box. An ID costs its 16-byte slot, its bytes shared by every user
// of the room (interned, see joinedRooms), and each user an entry of
// some 100 bytes. It holds the rooms of the users who poll and of those
// whose presence changes, so it fills with what is active; a server
// whose active users' rooms exceed it asks the database again, one query
// per user. At 100,000 IDs, with the bytes of each ID copied per user,
// the scale curve's 10,000 users in 10 rooms each (110,000) did not fit
// and the misses cost 7 % of the server's CPU.
const roomsOfCap = 300_000

// roommates answers whether two users share a joined room from memory:
// the rooms each user is joined to, loaded once from current state and
// dropped when a state event that may change them is heard of. Asking
// the database per change, per woken /sync, costs what the whole server
// does (see recent). Both sides are users' room lists, a few rooms
// each, rather than the member lists of the rooms: at 10,000 users a
// poll's window holds some fifty changes, each checked against the
// viewer's rooms, and a member list of a room of 5,000 is what had to
// be loaded and probed for each.
type roommates struct {
	st Store

	mu sync.Mutex
	// gen counts invalidations, so that a load racing one is not kept.
	gen     uint64
	roomsOf *cache.LRU[string, []string]
}

func newRoommates(st Store) *roommates {
	return &roommates{st: st, roomsOf: newRoomsOf()}
}

func newRoomsOf() *cache.LRU[string, []string] { return cache.NewLRU[string, []string](roomsOfCap) }

// heard keeps the cache true to current state, which changes only
// with an accepted state event of the room (the engine publishes it once
// stored). A local user's membership event changes that user's rooms
// alone: local events extend the room's state without resolution. Any
// other state event may resolve state and so change anyone's membership
// in the room (a state reset): every user's rooms are loaded again.
// Partial-state rooms completed get their full member lists the same way.
func (m *roommates) heard(_ context.Context, c bus.Change, serverName string) {
	switch c := c.(type) {
	case rooms.Notification:
		if c.Event == nil || c.Event.StateKey() == nil {
			return
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		m.gen++
		if c.Event.Type() == "m.room.member" && userServer(string(c.Event.SenderID())) == serverName {
			m.roomsOf.Remove(*c.Event.StateKey())
			return
		}
		m.roomsOf = newRoomsOf()
	case rooms.PartialStateCompleted:
		m.mu.Lock()
		defer m.mu.Unlock()
		m.gen++
		m.roomsOf = newRoomsOf()
	}
}

// roomSet is the set of rooms a user is joined to.
func (m *roommates) roomSet(ctx context.Context, userID string) (map[string]struct{}, error) {
	ids, err := m.joinedRooms(ctx, userID)
	if err != nil {
		return nil, err
	}
	set := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		set[id] = struct{}{}
	}
	return set, nil
}

// inAny reports whether a user is joined to any of the rooms.
func (m *roommates) inAny(ctx context.Context, userID string, rooms map[string]struct{}) (bool, error) {
	if len(rooms) == 0 {
		return false, nil
	}
	ids, err := m.joinedRooms(ctx, userID)
	if err != nil {
		return false, err
	}
	for _, id := range ids {
		if _, ok := rooms[id]; ok {
			return true, nil
		}
	}
	return false, nil
}

// cachedRooms is joinedRooms when the cache holds the user's rooms.
func (m *roommates) cachedRooms(userID string) ([]string, bool) {
	m.mu.Lock()
	cached := m.roomsOf
	m.mu.Unlock()
	return cached.Get(userID)
}

// joinedRooms lists the rooms a user is joined to (not to be changed).
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
		ids[i] = unique.Make(r.RoomID).Value()
	}
	m.mu.Lock()
	if m.gen == gen {
		m.roomsOf.PutCost(userID, ids, len(ids)+1)
	}
	m.mu.Unlock()
	return ids, nil
}
