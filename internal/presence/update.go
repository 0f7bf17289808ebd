package presence

import (
	"context"
	"errors"

	"github.com/myelin-chat/myelin/internal/store"
)

// apply changes a user's presence by change, called under the service's
// lock with the current state, and decides as Synapse's handle_update
// what follows: a change clients must see is written at a new stream
// position, announced as Changed and, for a local user, sent to
// other servers; any other change stays in memory until the next flush.
func (s *Service) apply(ctx context.Context, userID string, change func(p *store.Presence, now int64)) error {
	prev, err := s.load(ctx, userID)
	if err != nil {
		return err
	}
	local := s.isLocal(userID)
	s.mu.Lock()
	if cur, ok := s.users[userID]; ok {
		prev = cur
	}
	now := s.now()
	next := prev
	change(&next, now)
	notify, ping := s.decide(prev, &next, local, now)
	if !notify {
		s.users[userID] = next
		if next != prev {
			if _, failed := s.dirty[userID]; !failed {
				s.dirty[userID] = true
			}
		}
		s.mu.Unlock()
		if ping {
			s.o.Bus.Publish(ctx, push(next, now))
		}
		return nil
	}
	pos, err := s.storeLocked(ctx, userID, next)
	if err != nil {
		return err
	}
	if local {
		s.o.Bus.Publish(ctx, push(next, now))
	}
	s.changed(ctx, userID, pos)
	return nil
}

// load makes sure memory holds a user's presence (from the database, or
// offline when none is stored) and returns it.
func (s *Service) load(ctx context.Context, userID string) (store.Presence, error) {
	for {
		s.mu.Lock()
		p, ok := s.users[userID]
		gen := s.evictions
		s.mu.Unlock()
		if ok {
			return p, nil
		}
		p, err := s.o.Store.GetPresence(ctx, userID)
		if errors.Is(err, store.ErrNotFound) {
			p, err = store.Presence{UserID: userID, Presence: Offline}, nil
		}
		if err != nil {
			return store.Presence{}, err
		}
		s.mu.Lock()
		if s.evictions != gen {
			// An eviction may have dropped a state newer than what was
			// read; read again.
			s.mu.Unlock()
			continue
		}
		if cur, ok := s.users[userID]; ok {
			p = cur
		} else {
			s.users[userID] = p
		}
		s.mu.Unlock()
		return p, nil
	}
}

// decide completes a new state and tells whether clients must be told
// (notify) or only other servers reminded (ping), as Synapse's
// handle_update: a local online user is currently_active while active
// within LastActiveGranularity, and a local user who is not offline is
// sent to other servers at least every FederationPingInterval.
func (s *Service) decide(prev store.Presence, next *store.Presence, local bool, now int64) (notify, ping bool) {
	if local {
		next.CurrentlyActive = next.Presence == Online && now-next.LastActiveTS < LastActiveGranularity.Milliseconds()
		if next.Presence != Offline && now-next.LastFederationUpdateTS > FederationPingInterval.Milliseconds() {
			next.LastFederationUpdateTS = now
			ping = true
		}
	}
	if shouldNotify(prev, *next) {
		next.LastFederationUpdateTS = now
		return true, false
	}
	return false, ping
}

// shouldNotify is Synapse's should_notify: a change of state or status
// message; for an online user a change of currently_active, or a bump of
// the last active time beyond the granularity while not currently active;
// for others any such bump.
func shouldNotify(old, next store.Presence) bool {
	if old.Presence != next.Presence || !sameMsg(old.StatusMsg, next.StatusMsg) {
		return true
	}
	bumped := next.LastActiveTS-old.LastActiveTS > LastActiveGranularity.Milliseconds()
	if old.Presence == Online {
		return next.CurrentlyActive != old.CurrentlyActive || (bumped && !next.CurrentlyActive)
	}
	return bumped
}

func sameMsg(a, b *string) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// changed publishes Changed once pos is readable: a position commits ahead
// of earlier ones still in flight, and a /sync woken before Current
// reaches pos would not find the change.
func (s *Service) changed(ctx context.Context, userID string, pos int64) {
	if !s.o.Stream.WaitReadable(ctx, pos) {
		// The change is stored; the next wake-up finds it.
		return
	}
	// The user's rooms are loaded once here, before the roommates it
	// wakes (up to every poller of the server, together) each look for
	// them at once and each miss the cache.
	if _, err := s.mates.joinedRooms(ctx, userID); err != nil {
		s.o.Log.Warn("presence: loading a user's rooms", "user_id", userID, "err", err)
	}
	s.o.Bus.Publish(ctx, Changed{UserID: userID})
}

// storeLocked writes a user's presence at a new stream position; called
// with s.mu held, which it releases. The position is taken under the
// lock, so that a user's positions follow the order of their changes
// (the store keeps the latest). A failed write leaves the user dirty,
// for the periodic flush to retry.
func (s *Service) storeLocked(ctx context.Context, userID string, p store.Presence) (int64, error) {
	pos := s.o.Stream.Next()
	p.StreamPos = pos
	s.users[userID] = p
	delete(s.dirty, userID)
	s.mu.Unlock()
	if err := s.o.Store.PutPresence(ctx, p); err != nil {
		s.o.Stream.Abandon(pos)
		s.mu.Lock()
		s.dirty[userID] = false
		s.mu.Unlock()
		return 0, err
	}
	// Before the position is done: a /sync reading up to it must find
	// the change in the ring as it would in the store.
	s.mu.Lock()
	s.recent.add(p)
	s.mu.Unlock()
	s.marks.Note("", pos)
	s.o.Stream.Done(pos)
	return pos, nil
}
