package slidingsync

import (
	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/cache"
)

// defaultRoomTypesBytes bounds the room types' cache when New is given
// no bound (memory.lookup_cache_mib's default). It was bounded at 2^18
// rooms, some 40 MB when full.
const defaultRoomTypesBytes = 4 << 20

// roomTypeCost estimates a cached room type: the room ID, the type (nil
// for most rooms) and the cache's entry.
func roomTypeCost(roomID string, t *string) int {
	n := cache.StringBytes(roomID) + cache.EntryOverhead
	if t != nil {
		n += cache.StringBytes(*t)
	}
	return n
}

// options are New's settings.
type options struct {
	roomTypesBytes int
	bus            bus.Bus
}

// Option sets one of New's settings.
type Option func(*options)

// WithBus subscribes the service to device deletions (keys.DeviceUpdate),
// which end the deleted device's connections.
func WithBus(b bus.Bus) Option {
	return func(o *options) { o.bus = b }
}

// WithRoomTypesCacheBytes bounds the cache of rooms' types by an
// estimate of its memory; 0 or less keeps the default.
func WithRoomTypesCacheBytes(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.roomTypesBytes = n
		}
	}
}
