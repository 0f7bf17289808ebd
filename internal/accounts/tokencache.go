package accounts

import (
	"sync"
	"time"

	"github.com/myelin-chat/myelin/internal/cache"
	"github.com/myelin-chat/myelin/internal/store"
)

// tokenCache remembers what access tokens resolve to, so that most
// requests skip a database lookup (4-9 % of a request's CPU in profiles).
// Every change to a user's sessions bumps the user's generation, which
// retires their entries. A lookup that raced any such change is not
// cached: it read the global epoch before going to the database, and the
// change moved the epoch on. The TTL bounds staleness should a change
// bypass this process (several processes share one database).
type tokenCache struct {
	mu      sync.Mutex
	entries map[string]cachedToken // by token hash
	gens    map[string]uint64      // by localpart
	epoch   uint64
	max     int
	ttl     time.Duration
}

type cachedToken struct {
	owner store.TokenOwner
	gen   uint64
	at    time.Time
}

func newTokenCache(max int, ttl time.Duration) *tokenCache {
	return &tokenCache{entries: map[string]cachedToken{}, gens: map[string]uint64{}, max: max, ttl: ttl}
}

// get returns a cached owner still current at now.
func (c *tokenCache) get(hash string, now time.Time) (store.TokenOwner, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[hash]
	if !ok || now.Sub(e.at) > c.ttl || e.gen != c.gens[e.owner.User.Localpart] {
		return store.TokenOwner{}, false
	}
	return e.owner, true
}

// start is read before a database lookup and passed to put.
func (c *tokenCache) start() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.epoch
}

// put caches a lookup unless a session changed since it started.
func (c *tokenCache) put(hash string, owner store.TokenOwner, started uint64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if started != c.epoch {
		return
	}
	if len(c.entries) >= c.max {
		clear(c.entries) // cheap bound; the cache refills from hot tokens
	}
	c.entries[hash] = cachedToken{owner: owner, gen: c.gens[owner.User.Localpart], at: now}
}

// invalidate retires every cached token of a user.
func (c *tokenCache) invalidate(localpart string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gens[localpart]++
	c.epoch++
}

// trimExpired drops the entries get would no longer return (past the
// TTL, or of a retired generation) and the generations no entry holds,
// and reports how many entries it dropped. A generation forgotten
// starts again at 0: the entries it retired are gone with it, and a
// lookup racing a change is still refused by the epoch. Called at quiet
// (Service.TrimIdle): the entries a burst cached would otherwise stay,
// each token's owner (user ID, device, a few strings) among the spans
// the burst filled, in maps that do not shrink.
func (c *tokenCache) trimExpired(now time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	held := make(map[string]bool, len(c.entries))
	for hash, e := range c.entries {
		lp := e.owner.User.Localpart
		if now.Sub(e.at) > c.ttl || e.gen != c.gens[lp] {
			delete(c.entries, hash)
			n++
			continue
		}
		held[lp] = true
	}
	for lp := range c.gens {
		if !held[lp] {
			delete(c.gens, lp)
		}
	}
	if n > 0 {
		c.entries, c.gens = cache.Resized(c.entries), cache.Resized(c.gens)
	}
	return n
}
