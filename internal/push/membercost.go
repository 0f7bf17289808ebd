package push

import (
	"unsafe"

	"github.com/myelin-chat/myelin/internal/cache"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// defaultMemberCacheBytes bounds the member cache when the options give
// none (memory.state_cache_mib's default, which the server passes).
const defaultMemberCacheBytes = 16 << 20

// memberStateCost estimates the memory a cached memberState holds: its
// state map (often the very map the engine's snapshot cache holds, so
// this counts it twice; evicted there, it stays alive here), the set of
// joined local users and their list. The cache was bounded at 200,000
// rooms, costed by their local members only: the state maps, the bulk,
// went uncounted.
func memberStateCost(m *memberState) int {
	return rooms.StateBytes(m.state) + len(m.localJoined)*localMemberBytes + len(m.members.local)*16 + 160
}

// localMemberBytes estimates one entry of the set of joined local users:
// the map's slot (a string header and a bool, with Go's load factor) and
// the user ID.
const localMemberBytes = 80

// defaultUnreadCacheBytes bounds the unread counts' cache when the
// options give none (memory.lookup_cache_mib's default). It was bounded
// at 200,000 user and room pairs, whatever their threads.
const defaultUnreadCacheBytes = 4 << 20

// unreadCost estimates a cached user's counts in a room: the key's IDs,
// each thread's counts and ID, and the cache's entry.
func unreadCost(k countsKey, rows []store.ThreadCounts) int {
	// The key is two strings and the value a slice: the entry and the
	// map's slot are bigger than EntryOverhead's by their sizes.
	n := cache.EntryOverhead + 2*int(unsafe.Sizeof(k)) + 24 + cache.StringBytes(k.user) + cache.StringBytes(k.room)
	for _, r := range rows {
		n += int(unsafe.Sizeof(r)) + 8 + cache.StringBytes(r.ThreadID)
	}
	return n
}
