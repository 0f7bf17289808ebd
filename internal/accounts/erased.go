package accounts

import (
	"context"
	"sync"
)

// erasedCache holds the erased accounts' user IDs (deactivated with
// erase), loaded on first use: every timeline render asks about its
// senders, and erasures are rare.
type erasedCache struct {
	mu  sync.RWMutex
	ids map[string]bool // nil until loaded
}

// set records an erasure (or its undoing) once the cache is loaded; an
// unloaded cache will read it from the database.
func (c *erasedCache) set(userID string, erased bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ids == nil {
		return
	}
	if erased {
		c.ids[userID] = true
	} else {
		delete(c.ids, userID)
	}
}

// ErasedUsers says which of userIDs are erased accounts of this server,
// whose events users who were not joined when they were sent see
// redacted (Synapse's filter_events_for_client).
func (s *Service) ErasedUsers(ctx context.Context, userIDs []string) (map[string]bool, error) {
	c := &s.erased
	c.mu.RLock()
	ids := c.ids
	c.mu.RUnlock()
	if ids == nil {
		// Loaded under the write lock, so that an erasure recorded
		// meanwhile is not lost.
		c.mu.Lock()
		if c.ids == nil {
			list, err := s.store.ErasedUserIDs(ctx)
			if err != nil {
				c.mu.Unlock()
				return nil, err
			}
			c.ids = make(map[string]bool, len(list))
			for _, id := range list {
				c.ids[id] = true
			}
		}
		c.mu.Unlock()
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out map[string]bool
	for _, id := range userIDs {
		if c.ids[id] {
			if out == nil {
				out = map[string]bool{}
			}
			out[id] = true
		}
	}
	return out, nil
}
