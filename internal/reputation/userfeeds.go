package reputation

import (
	"context"
	"errors"
	"slices"

	"github.com/myelin-chat/myelin/internal/accountdata"
	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/store"
)

// This file is the Service's half of the users' own filters
// (UserFilters): reading them from account data, and following their
// feeds with the server's feeds' user.

// follows reports whether a room is a feed of the server or of a user.
func (s *Service) follows(roomID string) bool {
	return s.o.Blender.Follows(roomID) || (s.o.Users != nil && s.o.Users.blend.Follows(roomID))
}

// loadRules loads a feed room's rules into every blend that follows it.
func (s *Service) loadRules(roomID string, rules []StateRule) {
	s.o.Blender.LoadRules(roomID, rules)
	if s.o.Users != nil {
		s.o.Users.blend.LoadRules(roomID, rules)
	}
}

// listenUsers re-reads a user's filter when their account data changes.
func (s *Service) listenUsers() {
	if s.o.Users == nil {
		return
	}
	s.o.Bus.Subscribe("reputation-users", func(_ context.Context, c bus.Change) {
		userID := c.(accountdata.Changed).UserID
		s.mu.Lock()
		s.jobs = append(s.jobs, func(ctx context.Context) { s.loadUser(ctx, userID) })
		s.mu.Unlock()
		s.poke()
	}, accountdata.TopicChanged)
}

// loadUsers reads every user's filter and follows their feeds (at start).
func (s *Service) loadUsers(ctx context.Context) {
	if s.o.Users == nil {
		return
	}
	all, err := s.o.Store.GlobalAccountDataOfType(ctx, SubscriptionsType)
	if err != nil {
		if ctx.Err() == nil {
			s.o.Log.Warn("reputation: reading users' filters", "err", err)
		}
		return
	}
	for _, a := range all {
		s.o.Users.set(a.UserID, ParseUserSubscriptions([]byte(a.Content)))
	}
	s.followUsers(ctx)
}

// loadUser re-reads one user's filter and follows what it adds.
func (s *Service) loadUser(ctx context.Context, userID string) {
	raw, err := s.o.Store.GetAccountData(ctx, userID, "", SubscriptionsType)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		if ctx.Err() == nil {
			s.o.Log.Warn("reputation: reading a user's filter", "user_id", userID, "err", err)
		}
		return
	}
	// Any account data change wakes this (read markers too): only a
	// changed filter is followed further.
	if s.o.Users.set(userID, ParseUserSubscriptions([]byte(raw))) {
		s.followUsers(ctx)
	}
}

// followUsers follows every feed some user subscribed to and is not yet
// followed, and stops following those nobody wants any more (leaving
// the room unless the server's own feeds read it).
func (s *Service) followUsers(ctx context.Context) {
	if s.o.Users == nil {
		return
	}
	u := s.o.Users
	wanted := u.wanted()
	keep := map[string]bool{}
	for name, via := range wanted {
		u.mu.RLock()
		known := u.roomOf(name)
		u.mu.RUnlock()
		if known != "" && u.blend.Follows(known) && !s.stale[known] {
			keep[known] = true
			continue
		}
		roomID, err := s.join(ctx, name, known, slices.Compact(slices.Sorted(slices.Values(via))))
		if err == nil {
			u.blend.SetFeed(roomID, 1, false)
			if err = s.load(ctx, roomID); err != nil {
				u.blend.RemoveFeed(roomID)
			}
		}
		if err == nil {
			keep[roomID] = true
			delete(s.stale, roomID)
			u.resolved(name, roomID, "")
			continue
		}
		if ctx.Err() != nil {
			return
		}
		u.resolved(name, roomID, err.Error())
		s.o.Log.Warn("reputation: following a user's feed", "feed", name, "err", err)
	}
	for _, roomID := range u.followedRooms() {
		if keep[roomID] {
			continue
		}
		u.blend.RemoveFeed(roomID)
		if !s.o.Blender.Follows(roomID) {
			if _, err := s.o.Members.Leave(ctx, s.SystemUser(), roomID, ""); err != nil {
				s.o.Log.Warn("reputation: leaving a user's feed", "room_id", roomID, "err", err)
			}
		}
	}
}

// UserFilters are the users' own filters (nil when off).
func (s *Service) UserFilters() *UserFilters { return s.o.Users }

// ServerExtent reports, per feed of the server, what it hid over a
// period (since sinceTS), from the decision log: events hidden (or
// dropped) and invites refused, and the distinct users, rooms and
// servers those decisions named.
func (s *Service) ServerExtent(ctx context.Context, sinceTS int64) ([]Extent, error) {
	feeds, err := s.o.Store.ReputationFeeds(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Extent, 0, len(feeds))
	for _, f := range feeds {
		x := Extent{Feed: f.Feed, RoomID: f.RoomID, Weight: f.Weight, Allow: f.Allow, Rules: s.o.Blender.RuleCount(f.RoomID), Error: f.LastError}
		if f.RoomID != "" {
			counts, err := s.o.Store.ReputationFeedStats(ctx, f.RoomID, sinceTS)
			if err != nil {
				return nil, err
			}
			x.Events, x.Invites = counts[string(ActionEvents)], counts[string(ActionInvites)]
			kinds, err := s.o.Store.ReputationFeedEntities(ctx, f.RoomID, sinceTS, []string{string(ActionEvents), string(ActionInvites)})
			if err != nil {
				return nil, err
			}
			x.Users, x.Rooms, x.Servers = kinds[string(KindUser)], kinds[string(KindRoom)], kinds[string(KindServer)]
		}
		out = append(out, x)
	}
	return out, nil
}
