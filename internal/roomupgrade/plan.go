package roomupgrade

import (
	"context"
	"encoding/json"
	"sort"
	"strings"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
)

// upgradeTransferred are the state events a room upgrade copies to the
// new room (the spec's recommended list, as Synapse copies them; the
// power levels travel separately).
var upgradeTransferred = []string{
	spec.MRoomJoinRules, spec.MRoomHistoryVisibility, "m.room.guest_access", "m.room.name", "m.room.topic",
	"m.room.avatar", "m.room.encryption", "m.room.server_acl",
}

// plDefaults are the power levels content's values when a key is absent.
var plDefaults = map[string]any{
	"ban": 50, "kick": 50, "redact": 50, "invite": 0, "events_default": 0, "state_default": 50,
	"users_default": 0, "users": map[string]int64{}, "events": map[string]int64{}, "notifications": map[string]int64{"room": 50},
}

// roomUpgrade is a room upgrade as the spec's "Server behaviour" of room
// upgrades and Synapse do it: create the replacement (predecessor, room
// type, transferable state, power levels, bans, local canonical aliases),
// tombstone the old room, move the local aliases and the directory entry,
// and restrict the old room's power levels so that ordinary users can no
// longer speak or invite. Everything the new room starts with is read
// from the old room before anything is written.
type roomUpgrade struct {
	upgrader Upgrader
	oldID    string
	version  string
	// old is the old room's current state.
	old map[roommodel.StateKey]*rooms.Event
	// creation, powerLevels and initial are the replacement's creation
	// content, power levels and initial state.
	creation    map[string]json.RawMessage
	powerLevels map[string]json.RawMessage
	initial     []rooms.StateEvent
	// restorePowerLevels, when set, replaces powerLevels once the
	// replacement is set up (see upgradedPowerLevels).
	restorePowerLevels map[string]json.RawMessage
	// oldAlias is the old room's canonical alias content once its local
	// aliases have moved; nil when none move.
	oldAlias json.RawMessage
}

// planUpgrade checks that the caller may upgrade the room and computes
// the replacement from the room's current state.
func (s *Service) plan(ctx context.Context, oldID string, c Upgrader, version string, additionalCreators []string, newVersion gomatrixserverlib.IRoomVersion) (*roomUpgrade, error) {
	state, pl, err := s.authorize(ctx, oldID, c.UserID)
	if err != nil {
		return nil, err
	}
	all, err := s.rooms.StateEvents(ctx, state)
	if err != nil {
		return nil, err
	}
	create := all[roommodel.StateKey{Type: spec.MRoomCreate}]
	if create == nil {
		return nil, mxerr.NotFound("Unknown room")
	}
	u := &roomUpgrade{upgrader: c, oldID: oldID, version: version, old: all}
	creators, err := s.upgradeCreationContent(ctx, u, create, newVersion, additionalCreators)
	if err != nil {
		return nil, err
	}
	if u.powerLevels, u.restorePowerLevels, err = upgradedPowerLevels(all, pl, create, newVersion, creators, c.UserID); err != nil {
		return nil, err
	}
	u.initial, u.oldAlias = s.upgradeInitialState(all, create)
	return u, nil
}

// authorizeUpgrade returns the room's current state and power levels
// when the user is joined and may send the tombstone.
func (s *Service) authorize(ctx context.Context, roomID, userID string) (rooms.StateMap, *gomatrixserverlib.PowerLevelContent, error) {
	state, err := s.rooms.CurrentState(ctx, roomID)
	if err != nil {
		return nil, nil, err
	}
	if m, err := s.rooms.MembershipIn(ctx, state, userID); err != nil {
		return nil, nil, err
	} else if m != spec.Join {
		return nil, nil, mxerr.Forbidden("You are not in this room")
	}
	pl, err := s.rooms.PowerLevels(ctx, state)
	if err != nil {
		return nil, nil, err
	}
	if pl.UserLevel(spec.SenderID(userID)) < pl.EventLevel("m.room.tombstone", true) {
		return nil, nil, mxerr.Forbidden("You don't have permission to upgrade the room")
	}
	return state, pl, nil
}

// upgradeCreationContent sets u.creation: the predecessor, the old room's
// type and m.federate, and the additional creators where the new version
// has privileged creators. It returns the new room's creators.
func (s *Service) upgradeCreationContent(ctx context.Context, u *roomUpgrade, create *rooms.Event, newVersion gomatrixserverlib.IRoomVersion, additionalCreators []string) ([]string, error) {
	u.creation = map[string]json.RawMessage{}
	predecessor := map[string]string{"room_id": u.oldID}
	// The last event before the upgrade: the tombstone's ID is unknown
	// until the new room exists. A v12 create event names no event
	// (MSC4291; the spec lets it be omitted from v12 and Synapse omits it).
	if !newVersion.DomainlessRoomIDs() {
		if last, err := s.rooms.LastEventID(ctx, u.oldID, s.rooms.Stream().Current()); err != nil {
			return nil, err
		} else if last != "" {
			predecessor["event_id"] = last
		}
	}
	u.creation["predecessor"], _ = json.Marshal(predecessor)
	var oldCreate map[string]json.RawMessage
	_ = json.Unmarshal(create.Content(), &oldCreate)
	for _, k := range []string{"type", "m.federate"} {
		if v, ok := oldCreate[k]; ok {
			u.creation[k] = v
		}
	}
	creators := []string{u.upgrader.UserID}
	if newVersion.PrivilegedCreators() && len(additionalCreators) > 0 {
		u.creation["additional_creators"], _ = json.Marshal(additionalCreators)
		creators = append(creators, additionalCreators...)
	}
	return creators, nil
}

// upgradeInitialState is the state the replacement starts with besides
// its preset's: the transferable state, the local canonical aliases and,
// for a space, its children. oldAlias is what the old room's canonical
// alias becomes (see splitCanonicalAlias).
func (s *Service) upgradeInitialState(all map[roommodel.StateKey]*rooms.Event, create *rooms.Event) (initial []rooms.StateEvent, oldAlias json.RawMessage) {
	for _, typ := range upgradeTransferred {
		if ev := all[roommodel.StateKey{Type: typ}]; ev != nil {
			initial = append(initial, rooms.StateEvent{Type: typ, Content: json.RawMessage(ev.Content())})
		}
	}
	oldAlias, newAlias := s.splitCanonicalAlias(all[roommodel.StateKey{Type: "m.room.canonical_alias"}])
	if newAlias != nil {
		initial = append(initial, rooms.StateEvent{Type: "m.room.canonical_alias", Content: newAlias})
	}
	if rooms.ContentString(create.Content(), "type") == "m.space" {
		initial = append(initial, spaceChildState(all)...)
	}
	return initial, oldAlias
}

// spaceChildState is the m.space.child state a space keeps on upgrade:
// the children not removed (non-empty content), by room ID.
func spaceChildState(all map[roommodel.StateKey]*rooms.Event) []rooms.StateEvent {
	var children []rooms.StateEvent
	for k, ev := range all {
		var c map[string]json.RawMessage
		if k.Type == "m.space.child" && json.Unmarshal(ev.Content(), &c) == nil && len(c) > 0 {
			children = append(children, rooms.StateEvent{Type: k.Type, StateKey: k.StateKey, Content: json.RawMessage(ev.Content())})
		}
	}
	sort.Slice(children, func(i, j int) bool { return children[i].StateKey < children[j].StateKey })
	return children
}

// performUpgrade carries out a planned upgrade and returns the
// replacement's ID. Only the replacement's creation and the tombstone
// must succeed; an event the upgrader may not send is left out (see
// ignoreAuth).
func (s *Service) perform(ctx context.Context, u *roomUpgrade) (string, error) {
	c := u.upgrader
	newID, err := s.rooms.CreateRoom(ctx, rooms.CreateRequest{
		Creator: c.UserID, Version: u.version, CreationContent: u.creation, PowerLevelOverride: u.powerLevels,
		Preset: rooms.PresetPrivateChat, InitialState: u.initial, CreatorContent: s.profile(ctx, c.Localpart),
	})
	if err != nil {
		return "", err
	}
	if err := s.carryBans(ctx, u, newID); err != nil {
		return "", err
	}
	if _, err := s.sendState(ctx, u.oldID, c.UserID, "m.room.tombstone",
		map[string]string{"body": "This room has been replaced", "replacement_room": newID}); err != nil {
		return "", err
	}
	if err := s.moveAddresses(ctx, u, newID); err != nil {
		return "", err
	}
	if restricted := restrictedPowerLevels(u.old[roommodel.StateKey{Type: spec.MRoomPowerLevels}]); restricted != nil {
		if err := ignoreAuth(s.sendState(ctx, u.oldID, c.UserID, spec.MRoomPowerLevels, restricted)); err != nil {
			return "", err
		}
	}
	if u.restorePowerLevels != nil {
		// Drop the level the upgrading user held only to copy the state.
		if err := ignoreAuth(s.sendState(ctx, newID, c.UserID, spec.MRoomPowerLevels, u.restorePowerLevels)); err != nil {
			return "", err
		}
	}
	return newID, nil
}

// carryBans bans in the replacement those banned from the old room;
// other memberships cannot carry over.
func (s *Service) carryBans(ctx context.Context, u *roomUpgrade, newID string) error {
	for k, ev := range u.old {
		if k.Type != spec.MRoomMember {
			continue
		}
		if m, _ := ev.Membership(); m == spec.Ban {
			if err := ignoreAuth(s.rooms.SetMembership(ctx, rooms.MembershipRequest{
				Sender: u.upgrader.UserID, RoomID: newID, Target: k.StateKey, Membership: spec.Ban, Reason: rooms.ContentString(ev.Content(), "reason"),
			})); err != nil {
				return err
			}
		}
	}
	return nil
}

// moveAddresses moves the old room's local aliases, the local ones of its
// canonical alias and its entry in the public room directory to the
// replacement.
func (s *Service) moveAddresses(ctx context.Context, u *roomUpgrade, newID string) error {
	if err := s.aliases.Move(ctx, u.oldID, newID); err != nil {
		return err
	}
	if u.oldAlias != nil {
		if err := ignoreAuth(s.sendState(ctx, u.oldID, u.upgrader.UserID, "m.room.canonical_alias", u.oldAlias)); err != nil {
			return err
		}
	}
	published, err := s.dir.Published(ctx, u.oldID)
	if err != nil || !published {
		return err
	}
	if err := s.dir.SetPublished(ctx, newID, true); err != nil {
		return err
	}
	return s.dir.SetPublished(ctx, u.oldID, false)
}

// sendState sends a state event with an empty state key.
func (s *Service) sendState(ctx context.Context, roomID, sender, typ string, content any) (*rooms.Event, error) {
	key := ""
	return s.rooms.Send(ctx, rooms.SendRequest{RoomID: roomID, Sender: sender, Type: typ, StateKey: &key, Content: content})
}

// ignoreAuth drops Matrix errors (an event the user may not send) and
// keeps internal ones: the upgrade goes on without that event, as in
// Synapse.
func ignoreAuth(_ *rooms.Event, err error) error {
	if _, ok := mxerr.As(err); ok {
		return nil
	}
	return err
}

// upgradedPowerLevels computes the replacement room's power levels: the
// old content (with explicit defaults for absent keys, so that it is
// sent as is) with the new room's creators left out of users where the
// version makes them privileged. Into such a version the old room's
// privileged creators get no level of their own: only those named in
// additional_creators keep power (spec "Room Upgrades", v1.16; Synapse
// does the same); into an older version they become level-100 users.
// When the upgrading user lacks the level to copy every state event they
// are raised to it, and restore is the content to send once the state is
// copied (nil when they were not raised).
func upgradedPowerLevels(all map[roommodel.StateKey]*rooms.Event, pl *gomatrixserverlib.PowerLevelContent,
	create *rooms.Event, newVersion gomatrixserverlib.IRoomVersion, newCreators []string, upgrader string,
) (content, restore map[string]json.RawMessage, err error) {
	content = map[string]json.RawMessage{}
	if ev := all[roommodel.StateKey{Type: spec.MRoomPowerLevels}]; ev != nil {
		if err := json.Unmarshal(ev.Content(), &content); err != nil {
			return nil, nil, err
		}
	}
	for k, v := range plDefaults {
		if _, ok := content[k]; !ok {
			content[k], _ = json.Marshal(v)
		}
	}
	users := map[string]json.RawMessage{}
	_ = json.Unmarshal(content["users"], &users)
	isNewCreator := map[string]bool{}
	for _, u := range newCreators {
		isNewCreator[u] = true
	}
	// Into a version without privileged creators, the old room's creators
	// keep their power as level 100; into v12 they get nothing of their
	// own (see above).
	if oldVersion, err := gomatrixserverlib.GetRoomVersion(create.Version()); err == nil && oldVersion.PrivilegedCreators() && !newVersion.PrivilegedCreators() {
		for _, u := range rooms.Creators(create) {
			if _, ok := users[u]; !ok {
				users[u] = json.RawMessage("100")
			}
		}
	}
	if newVersion.PrivilegedCreators() {
		for u := range isNewCreator {
			delete(users, u)
		}
	}
	content["users"], _ = json.Marshal(users)
	if newVersion.PrivilegedCreators() {
		return content, nil, nil
	}
	// The level needed to send every state event the new room starts with.
	needed := max(pl.StateDefault, pl.Ban)
	for _, lvl := range pl.Events {
		needed = max(needed, lvl)
	}
	current := pl.UsersDefault
	if raw, ok := users[upgrader]; ok {
		var n json.Number
		if json.Unmarshal(raw, &n) == nil {
			if v, err := n.Int64(); err == nil {
				current = v
			}
		}
	}
	if current >= needed {
		return content, nil, nil
	}
	raisedUsers := make(map[string]json.RawMessage, len(users)+1)
	for k, v := range users {
		raisedUsers[k] = v
	}
	raisedUsers[upgrader], _ = json.Marshal(needed)
	raisedContent := make(map[string]json.RawMessage, len(content))
	for k, v := range content {
		raisedContent[k] = v
	}
	raisedContent["users"], _ = json.Marshal(raisedUsers)
	return raisedContent, content, nil
}

// splitCanonicalAlias divides a canonical alias event on upgrade: the
// local aliases move to the new room (newContent), the old room keeps
// the rest (oldContent). Both are nil without a canonical alias event;
// oldContent is nil when nothing moves and newContent when nothing is
// local.
func (s *Service) splitCanonicalAlias(ev *rooms.Event) (oldContent, newContent json.RawMessage) {
	if ev == nil {
		return nil, nil
	}
	old := map[string]json.RawMessage{}
	if json.Unmarshal(ev.Content(), &old) != nil {
		return nil, nil
	}
	local := func(alias string) bool { return strings.HasSuffix(alias, ":"+s.serverName) }
	moved := map[string]any{}
	if alias := rooms.ContentString(ev.Content(), "alias"); alias != "" && local(alias) {
		moved["alias"] = alias
		delete(old, "alias")
	}
	var alt []string
	if raw, ok := old["alt_aliases"]; ok && json.Unmarshal(raw, &alt) == nil {
		var keep, move []string
		for _, al := range alt {
			if local(al) {
				move = append(move, al)
			} else {
				keep = append(keep, al)
			}
		}
		if len(move) > 0 {
			moved["alt_aliases"] = move
			if len(keep) == 0 {
				delete(old, "alt_aliases")
			} else {
				old["alt_aliases"], _ = json.Marshal(keep)
			}
		}
	}
	if len(moved) == 0 {
		return nil, nil
	}
	oldContent, _ = json.Marshal(old)
	newContent, _ = json.Marshal(moved)
	return oldContent, newContent
}

// restrictedPowerLevels is the old room's power levels after an upgrade:
// events_default and invite raised to max(50, users_default+1). Nil when
// they already are (or the room has no power levels event).
func restrictedPowerLevels(ev *rooms.Event) map[string]json.RawMessage {
	if ev == nil {
		return nil
	}
	pl, err := ev.PowerLevels()
	if err != nil {
		return nil
	}
	content := map[string]json.RawMessage{}
	if json.Unmarshal(ev.Content(), &content) != nil {
		return nil
	}
	level := max(50, pl.UsersDefault+1)
	changed := false
	for key, cur := range map[string]int64{"events_default": pl.EventsDefault, "invite": pl.Invite} {
		if cur < level {
			content[key], _ = json.Marshal(level)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return content
}
