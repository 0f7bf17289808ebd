package clientsync

import (
	"unsafe"

	"github.com/myelin-chat/myelin/internal/store"
)

// DefaultCacheBytes is the memory /sync's caches get when the server
// gives none (memory.sync_cache_mib's default): half for the notifier's
// joined users (WithJoinedCacheBytes), a quarter each for the service's
// memberships and active rooms (WithCacheBytes).
const DefaultCacheBytes = 8 << 20

// userSetEntryBytes estimates the memory of one entry of a set of user
// or room IDs (map[string]bool): the map's slot (string header and
// bool, with Go's load factor and tophash byte) and the ID, read from
// the database so not shared with anything else.
const userSetEntryBytes = 80

// membershipBytes estimates one cached store.RoomMembership: the struct,
// the room ID and membership strings read from the database.
const membershipBytes = int(unsafe.Sizeof(store.RoomMembership{})) + 56

// cacheEntryOverhead is the LRU's own entry, list element and map slot,
// and the header of the map or slice it holds.
const cacheEntryOverhead = 160

// setCost estimates the memory a cached set of IDs holds. These caches
// were bounded by their number of IDs before (200,000 joined users, and
// 2^18 memberships, some 25 MB), whatever the bytes: the bound meant
// more memory as the IDs got longer, and more than a small box has.
func setCost(n int) int { return n*userSetEntryBytes + cacheEntryOverhead }

// membershipsCost estimates the memory a user's cached memberships hold.
func membershipsCost(userID string, ms []store.RoomMembership) int {
	return len(ms)*membershipBytes + len(userID) + cacheEntryOverhead
}

// options are New's settings.
type options struct{ cacheBytes int }

// Option sets one of New's settings.
type Option func(*options)

// WithCacheBytes bounds the service's caches of users' memberships and
// of the rooms with events in a range (half each) by an estimate of
// their memory; 0 or less keeps the default (a half of
// DefaultCacheBytes).
func WithCacheBytes(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.cacheBytes = n
		}
	}
}

// WithJoinedCacheBytes bounds the notifier's cache of rooms' joined
// local users by an estimate of its memory; 0 or less keeps the default
// (a half of DefaultCacheBytes).
func WithJoinedCacheBytes(n int) NotifierOption {
	return func(nt *Notifier) {
		if n > 0 {
			nt.joinedBytes = n
		}
	}
}
