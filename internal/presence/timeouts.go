package presence

import (
	"context"
	"time"

	"github.com/myelin-chat/myelin/internal/store"
)

const (
	// sweepEvery is how often timeouts are checked (Synapse: 5 s).
	sweepEvery = 5 * time.Second
	// flushEvery is how often timestamps kept in memory are saved
	// (Synapse persists unpersisted changes every minute).
	flushEvery = time.Minute
)

// Run watches timeouts until ctx ends, then saves what memory holds.
// Users not offline at the last stop are loaded first, with a sync
// timeout's grace, so that clients reconnecting after a restart do not
// flicker offline (Synapse waits 30 s before its first timeout check).
func (s *Service) Run(ctx context.Context) error {
	if !s.o.Enabled {
		return nil
	}
	if err := s.loadActive(ctx); err != nil {
		s.o.Log.Error("presence: loading active users", "err", err)
	}
	sweep := time.NewTicker(sweepEvery)
	defer sweep.Stop()
	flush := time.NewTicker(flushEvery)
	defer flush.Stop()
	for {
		select {
		case <-ctx.Done():
			s.Flush(context.WithoutCancel(ctx))
			return nil
		case <-sweep.C:
			s.Sweep(ctx)
		case <-flush.C:
			s.Flush(ctx)
		}
	}
}

func (s *Service) loadActive(ctx context.Context) error {
	rows, err := s.o.Store.PresenceNotOffline(ctx)
	if err != nil {
		return err
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range rows {
		if _, ok := s.users[p.UserID]; ok {
			continue
		}
		p.LastUserSyncTS = max(p.LastUserSyncTS, now)
		s.users[p.UserID] = p
	}
	return nil
}

// Sweep applies the timeouts due (Synapse's handle_timeout): a local
// online user inactive for IdleTimer goes unavailable and stops being
// currently_active after LastActiveGranularity; a local user with no
// sync in progress, and none nor any activity for SyncOnlineTimeout,
// goes offline; a remote user not heard of for FederationTimeout goes
// offline. It also forgets offline users with nothing unsaved. Run calls
// it every few seconds; tests call it after moving the clock.
func (s *Service) Sweep(ctx context.Context) {
	now := s.now()
	var due []string
	s.mu.Lock()
	for id, p := range s.users {
		if p.Presence == Offline {
			if _, unsaved := s.dirty[id]; !unsaved && s.syncing[id] == 0 {
				// Changes read the ring's copy once memory's is gone:
				// it takes the timestamps saved since.
				s.recent.refresh(p)
				delete(s.users, id)
				s.evictions++
			}
			continue
		}
		next := p
		if s.timeout(&next, now) {
			due = append(due, id)
		}
	}
	s.mu.Unlock()
	for _, id := range due {
		// The state is looked at again under the lock: it may have moved
		// since.
		err := s.apply(ctx, id, func(p *store.Presence, now int64) { s.timeout(p, now) })
		if err != nil {
			s.o.Log.Warn("presence: timeout", "user_id", id, "err", err)
		}
	}
}

// timeout applies the timeouts due to p and reports whether anything is
// to be done (a change of state, or currently_active or a federation
// ping to reconsider). Called with the lock held.
func (s *Service) timeout(p *store.Presence, now int64) bool {
	if p.Presence == Offline {
		return false
	}
	if !s.isLocal(p.UserID) {
		if now-p.LastFederationUpdateTS > FederationTimeout.Milliseconds() {
			p.Presence = Offline
			return true
		}
		return false
	}
	due := false
	if p.Presence == Online {
		if now-p.LastActiveTS > IdleTimer.Milliseconds() {
			p.Presence = Unavailable
			due = true
		} else if p.CurrentlyActive && now-p.LastActiveTS >= LastActiveGranularity.Milliseconds() {
			due = true
		}
	}
	if now-p.LastFederationUpdateTS > FederationPingInterval.Milliseconds() {
		due = true
	}
	if s.syncing[p.UserID] == 0 && now-max(p.LastUserSyncTS, p.LastActiveTS) > SyncOnlineTimeout.Milliseconds() {
		p.Presence = Offline
		due = true
	}
	return due
}

// Flush saves the timestamps that changed in memory only, and writes
// again (at a new position) the states whose write failed.
func (s *Service) Flush(ctx context.Context) {
	s.mu.Lock()
	touch := make([]store.Presence, 0, len(s.dirty))
	var retry []string
	for id, onlyTimes := range s.dirty {
		if onlyTimes {
			touch = append(touch, s.users[id])
			delete(s.dirty, id)
		} else {
			retry = append(retry, id)
		}
	}
	s.mu.Unlock()
	for _, p := range touch {
		if err := s.o.Store.TouchPresence(ctx, p); err != nil {
			s.o.Log.Warn("presence: saving timestamps", "user_id", p.UserID, "err", err)
		}
	}
	for _, id := range retry {
		if err := s.rewrite(ctx, id); err != nil {
			s.o.Log.Warn("presence: writing a state again", "user_id", id, "err", err)
		}
	}
}

// rewrite writes a user's state held in memory at a new position.
func (s *Service) rewrite(ctx context.Context, userID string) error {
	s.mu.Lock()
	p, ok := s.users[userID]
	if !ok {
		delete(s.dirty, userID)
		s.mu.Unlock()
		return nil
	}
	pos, err := s.storeLocked(ctx, userID, p)
	if err != nil {
		return err
	}
	s.changed(ctx, userID, pos)
	return nil
}
