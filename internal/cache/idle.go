package cache

import (
	"sync"
	"weak"
)

// idleTrimmer is a cache that TrimIdle empties of what was not used
// lately.
type idleTrimmer interface{ TrimIdle() int }

// idle holds the caches registered with ExpireWhenIdle. Memory is the
// process's, as the collector is, so the registry is too; it holds the
// caches weakly, so that a server built and dropped (tests build
// hundreds) leaves nothing behind.
var idle struct {
	mu     sync.Mutex
	caches []func() (idleTrimmer, bool)
}

// ExpireWhenIdle registers c with TrimIdleCaches: while the process is
// quiet, its entries that go unused for a while are dropped. Only for
// caches proper, whose entries are found again elsewhere (the database);
// not for state kept in an LRU for its bound (sliding sync connections).
func ExpireWhenIdle[K comparable, V any](c *LRU[K, V]) *LRU[K, V] {
	return TrimWhenIdle(c)
}

// TrimWhenIdle registers a record that is not an LRU with
// TrimIdleCaches: each call, made while the process is quiet, drops
// what went unused since the previous one and reports how much. For
// records of what the database holds too, which a burst fills and a
// quiet server does not need to keep.
func TrimWhenIdle[T any, P interface {
	*T
	idleTrimmer
}](c P) P {
	p := weak.Make((*T)(c))
	idle.mu.Lock()
	defer idle.mu.Unlock()
	idle.caches = append(idle.caches, func() (idleTrimmer, bool) {
		if c := p.Value(); c != nil {
			return P(c), true
		}
		return nil, false
	})
	return c
}

// TrimIdleCaches trims every cache registered with ExpireWhenIdle (an
// entry survives one call if used since the last) and forgets the
// caches that are gone. It reports how many entries it dropped.
func TrimIdleCaches() int {
	idle.mu.Lock()
	live := idle.caches[:0]
	var trim []idleTrimmer
	for _, get := range idle.caches {
		if c, ok := get(); ok {
			live = append(live, get)
			trim = append(trim, c)
		}
	}
	clear(idle.caches[len(live):])
	idle.caches = live
	idle.mu.Unlock()
	n := 0
	for _, c := range trim {
		n += c.TrimIdle()
	}
	return n
}
