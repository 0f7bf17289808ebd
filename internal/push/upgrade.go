package push

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/rooms"
)

// A user's settings follow a room to its replacement: when a local user
// joins a room that replaces another (its create event names a
// predecessor), their enabled push rules about the old room are copied
// to the new one, and their tags and m.direct entry with them, as
// Synapse does on a join after an upgrade
// (copy_push_rules_from_room_to_room_for_user,
// copy_room_tags_and_direct_to_room), so that a muted favourite stays
// one. The upgrader's own join, which creates the room, is one. The push
// worker does it because it already hears of every new event off the
// request path.

// copyOnUpgradeJoin copies the joining user's room rules, tags and
// m.direct entry if n is a local user's first join of a room with a
// predecessor.
func (s *Service) copyOnUpgradeJoin(ctx context.Context, n rooms.Notification) error {
	ev := n.Event
	if ev.Type() != spec.MRoomMember || n.Membership != spec.Join || n.PrevMembership == spec.Join || ev.StateKey() == nil {
		return nil
	}
	userID := *ev.StateKey()
	if u, err := spec.NewUserID(userID, true); err != nil || string(u.Domain()) != s.opts.ServerName {
		return nil
	}
	roomID := ev.RoomID().String()
	// The state before the join, not the room's current state: the
	// create event is in both, and the current state takes the room's
	// lock, which the room's senders queue on. (A sender used to hold it
	// while it handed its event to this worker; with the queue full the
	// two waited on each other for good. The engine now publishes after
	// the lock is released, see rooms.roomHead.mu.)
	state, err := s.rooms.StateAt(ctx, ev.StateBefore)
	if err != nil {
		return err
	}
	create, err := s.rooms.StateEvent(ctx, state, spec.MRoomCreate, "")
	if err != nil || create == nil {
		return err
	}
	var c struct {
		Predecessor struct {
			RoomID string `json:"room_id"`
		} `json:"predecessor"`
	}
	if json.Unmarshal(create.Content(), &c) != nil || c.Predecessor.RoomID == "" || c.Predecessor.RoomID == roomID {
		return nil
	}
	if err := s.CopyRoomRules(ctx, userID, c.Predecessor.RoomID, roomID); err != nil {
		return err
	}
	return s.accountData.CopyToReplacement(ctx, userID, c.Predecessor.RoomID, roomID, s.opts.MaxTagBytes)
}

// CopyRoomRules gives the user, for the room newID, a copy of each of
// their enabled rules about oldID: the room rule of oldID, and rules
// with a room_id condition naming oldID (Element's per-room mute and
// mention-only rules), the condition naming newID. The copy takes the
// new room's ID as its rule ID, as Synapse's does; a rule the user
// already has under that ID is kept, and copies stop at the rule limit.
func (s *Service) CopyRoomRules(ctx context.Context, userID, oldID, newID string) error {
	return s.update(ctx, userID, func(u *userRules) error {
		for _, kind := range kinds {
			list := u.Rules.kind(kind)
			var copies []*Rule
			for _, r := range *list {
				if !r.Enabled {
					continue
				}
				cp, ok := copyForRoom(kind, r, oldID, newID)
				if !ok || findRule(*list, newID) >= 0 || slices.ContainsFunc(copies, func(c *Rule) bool { return c.RuleID == newID }) {
					continue
				}
				if u.Rules.count()+len(copies) >= s.opts.Limits.MaxRules {
					break
				}
				copies = append(copies, cp)
			}
			*list = append(copies, *list...)
		}
		return nil
	})
}

// copyForRoom is r for the room newID, if r is about the room oldID.
func copyForRoom(kind string, r *Rule, oldID, newID string) (*Rule, bool) {
	cp := *r
	cp.RuleID = newID
	if kind == "room" {
		return &cp, r.RuleID == oldID
	}
	// Numbers stay as written (UseNumber): a condition's value is the
	// user's, to be copied exactly.
	var conds []map[string]any
	dec := json.NewDecoder(bytes.NewReader(r.Conditions))
	dec.UseNumber()
	if len(r.Conditions) == 0 || dec.Decode(&conds) != nil {
		return nil, false
	}
	about := false
	for _, c := range conds {
		if c["key"] == "room_id" && c["pattern"] == oldID {
			c["pattern"], about = newID, true
		}
	}
	if !about {
		return nil, false
	}
	raw, err := json.Marshal(conds)
	if err != nil {
		return nil, false
	}
	cp.Conditions = raw
	return &cp, true
}
