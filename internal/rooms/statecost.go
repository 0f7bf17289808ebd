package rooms

import "github.com/myelin-chat/myelin/internal/cache"

// defaultStateCacheBytes is the snapshot cache's bound when the options
// give none (memory.state_cache_mib's default).
const defaultStateCacheBytes = 16 << 20

// stateEntryBytes estimates the memory of one entry of a cached state
// map: the map's slot for a StateKey (two string headers) and a NID
// with Go's load factor and tophash byte (about 60 bytes), and the key's
// strings, mostly a member's user ID. Snapshots derived from one another
// share those strings, so this over-counts a little; issue 20's
// 1,000-user scale step had 43 MB in 500,000 entries, 86 bytes each.
const stateEntryBytes = 88

// stateMapOverhead is a map's header and the cache entry holding it.
const stateMapOverhead = 160

// stateCost estimates the memory a cached state map holds. It was
// bounded by its number of entries before, whatever the rooms' sizes:
// the cache grew with the rooms stored, not with those in use.
func stateCost(s StateMap) int {
	return len(s)*stateEntryBytes + stateMapOverhead
}

// cacheState keeps a snapshot's full state for the next reader.
func (e *Engine) cacheState(id int64, s StateMap) { e.snapshots.PutCost(id, s, stateCost(s)) }

// StateBytes estimates the memory a state map holds, for the caches
// outside the engine that keep one (push's members per room).
func StateBytes(s StateMap) int { return stateCost(s) }

// defaultLookupCacheBytes bounds the relation flags when the options
// give none (memory.lookup_cache_mib's default).
const defaultLookupCacheBytes = 4 << 20

// relFlagCost estimates a room's cached "has relations" flag: the room
// ID and the cache's entry. The flags were bounded at 100,000 rooms,
// some 20 MB when full.
func relFlagCost(roomID string) int { return cache.StringBytes(roomID) + cache.EntryOverhead }
