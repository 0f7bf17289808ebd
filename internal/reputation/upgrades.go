package reputation

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/myelin-chat/myelin/internal/ident"
	"github.com/myelin-chat/myelin/internal/rooms"
)

// This file is the Service's half of room upgrades of feeds: a feed
// room that is replaced (m.room.tombstone, spec "Room Upgrades") is
// followed to its replacement, as Draupnir and Mjolnir follow an
// upgraded policy list, so that the publisher can keep publishing after
// an upgrade without every subscriber subscribing again.

// tombstoneType is the state event that ends a room in favour of its
// replacement.
const tombstoneType = "m.room.tombstone"

// upgrade is a feed room's replacement, not yet followed.
type upgrade struct {
	newRoom string
	via     []string
}

// replacement reads a tombstone's replacement room ("" when none, or
// not a room ID this server can hold).
func replacement(content []byte) string {
	var c struct {
		Replacement string `json:"replacement_room"`
	}
	if json.Unmarshal(content, &c) != nil || !strings.HasPrefix(c.Replacement, "!") || ident.CheckID(c.Replacement) != nil {
		return ""
	}
	return c.Replacement
}

// tombstoned notes that a followed feed's room was upgraded (heard on
// the bus): Run follows the replacement.
func (s *Service) tombstoned(ev *rooms.Event) {
	roomID := ev.RoomID().String()
	newRoom := replacement(ev.Content())
	if newRoom == "" || newRoom == roomID || !s.follows(roomID) {
		return
	}
	via := []string{}
	if srv := idServer(string(ev.SenderID())); srv != "" {
		via = append(via, srv)
	}
	s.mu.Lock()
	s.jobs = append(s.jobs, func(ctx context.Context) {
		s.upgrades[roomID] = upgrade{newRoom: newRoom, via: via}
		s.followUpgrades(ctx)
	})
	s.mu.Unlock()
	s.poke()
}

// checkTombstone queues the upgrade of a feed room whose current state
// already holds a tombstone (the upgrade happened while the server was
// down, or before it subscribed): called by load, on Run's goroutine.
func (s *Service) checkTombstone(ctx context.Context, roomID string, state rooms.StateMap) {
	key := rooms.StateKey{Type: tombstoneType}
	if _, ok := state[key]; !ok {
		return
	}
	evs, err := s.o.Rooms.StateEvents(ctx, state, key)
	if err != nil || evs[key] == nil {
		return
	}
	if newRoom := replacement(evs[key].Content()); newRoom != "" && newRoom != roomID {
		if _, queued := s.upgrades[roomID]; !queued {
			var via []string
			if srv := idServer(string(evs[key].SenderID())); srv != "" {
				via = append(via, srv)
			}
			s.upgrades[roomID] = upgrade{newRoom: newRoom, via: via}
			s.mu.Lock()
			s.jobs = append(s.jobs, s.followUpgrades)
			s.mu.Unlock()
			s.poke()
		}
	}
}

// followUpgrades follows every upgraded feed room to its replacement:
// joins it with the feeds' user, reads its rules, and puts it in the
// old room's place in each blend that followed it (its weight and kind,
// allow list or not, kept; Blender.Succeed), then leaves the old room.
// The old room's rules are enforced until then, so that enforcement
// never lapses while the replacement is joined. The rules themselves
// are the new room's: an upgrade does not copy them (spec, Synapse), so
// the publisher publishes them again there. A
// replacement that cannot be joined yet is tried again with the other
// retries (the old room's rules stay meanwhile). Run's goroutine only.
func (s *Service) followUpgrades(ctx context.Context) {
	for oldRoom, up := range s.upgrades {
		if err := s.followUpgrade(ctx, oldRoom, up); err != nil {
			if ctx.Err() != nil {
				return
			}
			s.o.Log.Warn("reputation: following an upgraded feed", "room_id", oldRoom, "replacement", up.newRoom, "err", err)
			s.noteFeedError(ctx, oldRoom, "the feed's room was upgraded to "+up.newRoom+"; joining it: "+err.Error())
			continue
		}
		delete(s.upgrades, oldRoom)
	}
}

func (s *Service) followUpgrade(ctx context.Context, oldRoom string, up upgrade) error {
	if s.retired[up.newRoom] {
		// Tombstones that point back to a room already replaced (A to
		// B to A) would have the feeds' user join and leave forever.
		s.o.Log.Warn("reputation: a feed's room was upgraded to a room it replaced; not followed", "room_id", oldRoom, "replacement", up.newRoom)
		return nil
	}
	inServer := s.o.Blender.Follows(oldRoom)
	inUsers := s.o.Users != nil && s.o.Users.blend.Follows(oldRoom)
	if !inServer && !inUsers {
		return nil // unsubscribed meanwhile
	}
	if _, err := s.join(ctx, up.newRoom, up.newRoom, up.via); err != nil {
		return err
	}
	rules, err := s.readRules(ctx, up.newRoom)
	if err != nil {
		return err
	}
	if inServer {
		feeds, err := s.o.Store.ReputationFeeds(ctx)
		if err != nil {
			return err
		}
		for _, f := range feeds {
			if f.RoomID == oldRoom {
				if err := s.o.Store.SetReputationFeedRoom(ctx, f.Feed, up.newRoom, ""); err != nil {
					return err
				}
			}
		}
		s.o.Blender.Succeed(oldRoom, up.newRoom, rules)
	}
	if inUsers {
		s.o.Users.blend.Succeed(oldRoom, up.newRoom, rules)
		s.o.Users.upgraded(oldRoom, up.newRoom)
	}
	delete(s.stale, oldRoom)
	s.retired[oldRoom] = true
	if _, err := s.o.Members.Leave(ctx, s.SystemUser(), oldRoom, ""); err != nil {
		s.o.Log.Warn("reputation: leaving an upgraded feed's room", "room_id", oldRoom, "err", err)
	}
	return nil
}

// noteFeedError shows an error with the subscriptions of a room.
func (s *Service) noteFeedError(ctx context.Context, roomID, msg string) {
	feeds, err := s.o.Store.ReputationFeeds(ctx)
	if err != nil {
		return
	}
	for _, f := range feeds {
		if f.RoomID == roomID {
			_ = s.o.Store.SetReputationFeedRoom(ctx, f.Feed, roomID, msg)
		}
	}
}

// upgraded points every user's feed followed in oldRoom to its
// replacement: their weights carry over.
func (u *UserFilters) upgraded(oldRoom, newRoom string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, f := range u.users {
		for _, feed := range f.subs.Feeds {
			if u.roomOf(feed.Room) == oldRoom {
				u.rooms[feed.Room] = newRoom
			}
		}
	}
	for name, roomID := range u.rooms {
		if roomID == oldRoom {
			u.rooms[name] = newRoom
		}
	}
	for _, f := range u.users {
		u.reweigh(f)
	}
}
