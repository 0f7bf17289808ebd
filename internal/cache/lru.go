// Package cache holds the bounded in-memory caches the server keeps in
// front of the database, and the positions (Marks, Watermark) that tell
// readers whether what they hold is still current.
package cache

import (
	"container/list"
	"sync"
)

// LRU is a size-bounded least-recently-used cache, safe for concurrent
// use. Each entry has a cost (1 for count-bounded caches); the cache
// evicts until the total cost is within its capacity.
type LRU[K comparable, V any] struct {
	mu       sync.Mutex
	capacity int
	cost     int
	order    *list.List // front: most recent
	items    map[K]*list.Element
	// peak is the most entries items has held since it was made: Go's
	// maps keep their largest size, so TrimIdle makes a new one when the
	// cache shrank well below it.
	peak int
	// gen counts TrimIdle calls; an entry's gen is the count when it
	// was last used.
	gen uint32
}

type entry[K comparable, V any] struct {
	key   K
	value V
	cost  int
	gen   uint32
}

// NewLRU makes a cache holding entries of total cost up to capacity.
func NewLRU[K comparable, V any](capacity int) *LRU[K, V] {
	return &LRU[K, V]{capacity: capacity, order: list.New(), items: map[K]*list.Element{}}
}

// Get returns the value for key and marks it recently used.
func (c *LRU[K, V]) Get(key K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.order.MoveToFront(el)
		e := el.Value.(*entry[K, V])
		e.gen = c.gen
		return e.value, true
	}
	var zero V
	return zero, false
}

// Put stores a value with cost 1.
func (c *LRU[K, V]) Put(key K, value V) { c.PutCost(key, value, 1) }

// PutCost stores a value with the given cost.
func (c *LRU[K, V]) PutCost(key K, value V, cost int) {
	if cost < 1 {
		cost = 1
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		e := el.Value.(*entry[K, V])
		c.cost += cost - e.cost
		e.value, e.cost, e.gen = value, cost, c.gen
		c.order.MoveToFront(el)
	} else {
		c.items[key] = c.order.PushFront(&entry[K, V]{key: key, value: value, cost: cost, gen: c.gen})
		c.cost += cost
		c.peak = max(c.peak, len(c.items))
	}
	for c.cost > c.capacity && c.order.Len() > 1 {
		last := c.order.Back()
		e := last.Value.(*entry[K, V])
		c.order.Remove(last)
		delete(c.items, e.key)
		c.cost -= e.cost
	}
}

// Contains reports whether key is cached, without marking it used.
func (c *LRU[K, V]) Contains(key K) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.items[key]
	return ok
}

// Remove drops a key.
func (c *LRU[K, V]) Remove(key K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.order.Remove(el)
		delete(c.items, key)
		c.cost -= el.Value.(*entry[K, V]).cost
	}
}

// RemoveIf drops the entries for which drop reports true (it is called
// with the cache locked, so it must not use the cache) and reports how
// many it dropped.
func (c *LRU[K, V]) RemoveIf(drop func(K, V) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for el := c.order.Front(); el != nil; {
		next := el.Next()
		if e := el.Value.(*entry[K, V]); drop(e.key, e.value) {
			c.order.Remove(el)
			delete(c.items, e.key)
			c.cost -= e.cost
			n++
		}
		el = next
	}
	return n
}

// Len is the number of entries.
func (c *LRU[K, V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

// TrimIdle drops the entries not used since the last TrimIdle and
// reports how many it dropped. Called while the server is quiet (see
// ExpireWhenIdle), a cache then holds what is in use, not what was
// once: a server that was busy gives the memory back.
func (c *LRU[K, V]) TrimIdle() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for last := c.order.Back(); last != nil; last = c.order.Back() {
		e := last.Value.(*entry[K, V])
		if e.gen == c.gen {
			break // the list is in order of use: the rest are newer
		}
		c.order.Remove(last)
		delete(c.items, e.key)
		c.cost -= e.cost
		n++
	}
	c.gen++
	// A map does not shrink when its keys are deleted: after a burst
	// the emptied cache would hold the burst's buckets (in issue 20's
	// load run 2 MB of the 6 MB live a minute after it).
	if n > 0 && len(c.items) <= c.peak/4 {
		c.items = Resized(c.items)
		c.peak = len(c.items)
	}
	return n
}
