package keys

import (
	"context"
	"sync"
	"time"
)

// Failed device-list refetches are retried, as Synapse's
// DeviceListUpdater retries the users it marked for resync
// (_maybe_retry_device_resync): a remote user's list marked stale (an
// m.device_list_update with a gap in prev_id, an m.signing_key_update
// that could not be applied) whose /user/devices fetch failed is fetched
// again later, with a back-off per user, for as long as they share a
// room with this server. Meanwhile a key query answers from the stale
// list (what is known) instead of asking their server, which just failed.

// retryBase is the first wait before a failed refetch is retried; each
// further failure doubles it, up to the federation retry cap.
const retryBase = 30 * time.Second

// resyncRetry is when a user's list is next refetched, and how many
// refetches failed.
type resyncRetry struct {
	next     time.Time
	failures int
}

// resyncRetries are the users whose refetch failed (at most
// maxResyncQueue: past it a failure is not retried, and the list,
// stale, is fetched by the next query instead).
type resyncRetries struct {
	mu    sync.Mutex
	users map[string]resyncRetry
}

// failed records a failed refetch and when to try again.
func (r *resyncRetries) failed(userID string, now time.Time, limit time.Duration) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.users == nil {
		r.users = map[string]resyncRetry{}
	}
	st, ok := r.users[userID]
	if !ok && len(r.users) >= maxResyncQueue {
		return false
	}
	wait := min(retryBase, limit)
	for i := 0; i < st.failures && wait < limit; i++ {
		wait *= 2
	}
	st.failures++
	st.next = now.Add(min(wait, limit))
	r.users[userID] = st
	return true
}

// done forgets a user whose list was fetched (or who shares no room any
// more).
func (r *resyncRetries) done(userID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.users, userID)
}

// pending tells whether a user's refetch failed and is to be retried.
func (r *resyncRetries) pending(userID string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.users[userID]
	return ok
}

// due lists the users whose retry time came, pushing their next one
// back so that a slow refetch is not queued twice.
func (r *resyncRetries) due(now time.Time, limit time.Duration) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for u, st := range r.users {
		if !now.Before(st.next) {
			out = append(out, u)
			st.next = now.Add(limit)
			r.users[u] = st
		}
	}
	return out
}

// retryTick is how often Run looks for refetches to retry: often enough
// for the shortest back-off.
func (s *Service) retryTick() time.Duration {
	return min(max(s.maxRetry/2, time.Second), retryBase)
}

// retryDue queues the refetches whose back-off ran out, dropping users
// who share no room with this server any more (their server stops
// sending updates; a query of them asks it again).
func (s *Service) retryDue(ctx context.Context) {
	for _, userID := range s.retries.due(s.now(), s.maxRetry) {
		shares, err := s.sharesRoom(ctx, userID)
		if err != nil {
			continue
		}
		if !shares {
			s.retries.done(userID)
			continue
		}
		s.Resync(userID)
	}
}
