package clientapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

func (a *API) registerUpgrade(rt *httpapi.Router) {
	legacy(rt, httpapi.Route{Method: http.MethodPost, Path: "/rooms/{roomId}/upgrade", Auth: httpapi.AuthRequired, Handler: a.upgradeRoom})
}

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

type upgradeRequest struct {
	NewVersion         *string  `json:"new_version"`
	AdditionalCreators []string `json:"additional_creators"`
}

// upgradeRoom replaces a room with a new one of another version, as the
// spec's "Server behaviour" of room upgrades and Synapse do: create the
// replacement (predecessor, room type, transferable state, power levels,
// bans, local canonical aliases), tombstone the old room, move the local
// aliases and the directory entry, and restrict the old room's power
// levels so that ordinary users can no longer speak or invite.
func (a *API) upgradeRoom(r *http.Request, c *httpapi.Caller) (any, error) {
	var req upgradeRequest
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return nil, err
	}
	if req.NewVersion == nil {
		return nil, mxerr.MissingParam("Missing params: new_version")
	}
	newVersion, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(*req.NewVersion))
	if err != nil {
		return nil, &mxerr.Error{Status: http.StatusBadRequest, Code: "M_UNSUPPORTED_ROOM_VERSION", Message: "Your homeserver does not support this room version"}
	}
	ctx := r.Context()
	oldID := r.PathValue("roomId")
	state, err := a.rooms.CurrentState(ctx, oldID)
	if err != nil {
		return nil, err
	}
	if m, err := a.rooms.MembershipIn(ctx, state, c.UserID); err != nil {
		return nil, err
	} else if m != spec.Join {
		return nil, mxerr.Forbidden("You are not in this room")
	}
	pl, err := a.rooms.PowerLevels(ctx, state)
	if err != nil {
		return nil, err
	}
	if pl.UserLevel(spec.SenderID(c.UserID)) < pl.EventLevel("m.room.tombstone", true) {
		return nil, mxerr.Forbidden("You don't have permission to upgrade the room")
	}

	all, err := a.rooms.StateEvents(ctx, state)
	if err != nil {
		return nil, err
	}
	create := all[store.StateKey{Type: spec.MRoomCreate}]
	if create == nil {
		return nil, mxerr.NotFound("Unknown room")
	}
	creation := map[string]json.RawMessage{}
	predecessor := map[string]string{"room_id": oldID}
	// The last event before the upgrade: the tombstone's ID is unknown
	// until the new room exists.
	if last, err := a.roomStore.LastEventAtOrBefore(ctx, oldID, a.rooms.Stream().Current()); err == nil {
		predecessor["event_id"] = last.EventID
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	creation["predecessor"], _ = json.Marshal(predecessor)
	var oldCreate map[string]json.RawMessage
	_ = json.Unmarshal(create.Content(), &oldCreate)
	for _, k := range []string{"type", "m.federate"} {
		if v, ok := oldCreate[k]; ok {
			creation[k] = v
		}
	}
	newCreators := []string{c.UserID}
	if newVersion.PrivilegedCreators() && len(req.AdditionalCreators) > 0 {
		creation["additional_creators"], _ = json.Marshal(req.AdditionalCreators)
		newCreators = append(newCreators, req.AdditionalCreators...)
	}

	plOverride, raised, final, err := a.upgradedPowerLevels(all, pl, create, newVersion, newCreators, c.UserID)
	if err != nil {
		return nil, err
	}

	var initial []rooms.StateEvent
	for _, typ := range upgradeTransferred {
		if ev := all[store.StateKey{Type: typ}]; ev != nil {
			initial = append(initial, rooms.StateEvent{Type: typ, Content: json.RawMessage(ev.Content())})
		}
	}
	oldAlias, newAlias := a.splitCanonicalAlias(all[store.StateKey{Type: "m.room.canonical_alias"}])
	if newAlias != nil {
		initial = append(initial, rooms.StateEvent{Type: "m.room.canonical_alias", Content: newAlias})
	}
	if contentString(create.Content(), "type") == "m.space" {
		// A space keeps its children (those not removed: non-empty content).
		var children []rooms.StateEvent
		for k, ev := range all {
			var c map[string]json.RawMessage
			if k.Type == "m.space.child" && json.Unmarshal(ev.Content(), &c) == nil && len(c) > 0 {
				children = append(children, rooms.StateEvent{Type: k.Type, StateKey: k.StateKey, Content: json.RawMessage(ev.Content())})
			}
		}
		sort.Slice(children, func(i, j int) bool { return children[i].StateKey < children[j].StateKey })
		initial = append(initial, children...)
	}

	newID, err := a.rooms.CreateRoom(ctx, rooms.CreateRequest{
		Creator: c.UserID, Version: *req.NewVersion, CreationContent: creation, PowerLevelOverride: plOverride,
		Preset: rooms.PresetPrivateChat, InitialState: initial, CreatorContent: a.memberProfile(ctx, c.Localpart),
	})
	if err != nil {
		return nil, err
	}

	// Bans carry over; other memberships cannot.
	for k, ev := range all {
		if k.Type != spec.MRoomMember {
			continue
		}
		if m, _ := ev.Membership(); m == spec.Ban {
			if err := ignoreAuth(a.rooms.SetMembership(ctx, rooms.MembershipRequest{
				Sender: c.UserID, RoomID: newID, Target: k.StateKey, Membership: spec.Ban, Reason: contentString(ev.Content(), "reason"),
			})); err != nil {
				return nil, err
			}
		}
	}

	key := ""
	if _, err := a.rooms.Send(ctx, rooms.SendRequest{RoomID: oldID, Sender: c.UserID, Type: "m.room.tombstone", StateKey: &key,
		Content: map[string]string{"body": "This room has been replaced", "replacement_room": newID}}); err != nil {
		return nil, err
	}

	if err := a.roomStore.MoveAliases(ctx, oldID, newID); err != nil {
		return nil, err
	}
	if oldAlias != nil {
		if err := ignoreAuth(a.rooms.Send(ctx, rooms.SendRequest{RoomID: oldID, Sender: c.UserID, Type: "m.room.canonical_alias", StateKey: &key, Content: oldAlias})); err != nil {
			return nil, err
		}
	}
	if published, err := a.roomStore.RoomPublished(ctx, oldID); err != nil {
		return nil, err
	} else if published {
		if err := a.publishRoom(ctx, newID, true); err != nil {
			return nil, err
		}
		if err := a.publishRoom(ctx, oldID, false); err != nil {
			return nil, err
		}
	}

	if restricted := restrictedPowerLevels(all[store.StateKey{Type: spec.MRoomPowerLevels}]); restricted != nil {
		if err := ignoreAuth(a.rooms.Send(ctx, rooms.SendRequest{RoomID: oldID, Sender: c.UserID, Type: spec.MRoomPowerLevels, StateKey: &key, Content: restricted})); err != nil {
			return nil, err
		}
	}
	if raised {
		// Drop the level the upgrading user held only to copy the state.
		if err := ignoreAuth(a.rooms.Send(ctx, rooms.SendRequest{RoomID: newID, Sender: c.UserID, Type: spec.MRoomPowerLevels, StateKey: &key, Content: final})); err != nil {
			return nil, err
		}
	}
	return map[string]string{"replacement_room": newID}, nil
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
// sent as is), the old room's creators keeping their power as level 100
// where they are not creators of the new room, and the new room's
// creators left out of users where the version makes them privileged.
// When the upgrading user lacks the level to copy every state event they
// are raised to it (raised), and final is the content to restore after.
func (a *API) upgradedPowerLevels(all map[store.StateKey]*rooms.Event, pl *gomatrixserverlib.PowerLevelContent,
	create *rooms.Event, newVersion gomatrixserverlib.IRoomVersion, newCreators []string, upgrader string,
) (map[string]json.RawMessage, bool, map[string]json.RawMessage, error) {
	content := map[string]json.RawMessage{}
	if ev := all[store.StateKey{Type: spec.MRoomPowerLevels}]; ev != nil {
		if err := json.Unmarshal(ev.Content(), &content); err != nil {
			return nil, false, nil, err
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
	if oldVersion, err := gomatrixserverlib.GetRoomVersion(create.Version()); err == nil && oldVersion.PrivilegedCreators() {
		for _, u := range rooms.Creators(create) {
			if _, ok := users[u]; !ok && !(newVersion.PrivilegedCreators() && isNewCreator[u]) {
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
		return content, false, nil, nil
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
		return content, false, nil, nil
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
	return raisedContent, true, content, nil
}

// splitCanonicalAlias divides a canonical alias event on upgrade: the
// local aliases move to the new room (newContent), the old room keeps
// the rest (oldContent). Both are nil without a canonical alias event;
// oldContent is nil when nothing moves and newContent when nothing is
// local.
func (a *API) splitCanonicalAlias(ev *rooms.Event) (oldContent, newContent json.RawMessage) {
	if ev == nil {
		return nil, nil
	}
	old := map[string]json.RawMessage{}
	if json.Unmarshal(ev.Content(), &old) != nil {
		return nil, nil
	}
	local := func(alias string) bool { return strings.HasSuffix(alias, ":"+a.cfg.ServerName) }
	moved := map[string]any{}
	if alias := contentString(ev.Content(), "alias"); alias != "" && local(alias) {
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
