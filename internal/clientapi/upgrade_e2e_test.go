package clientapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// upgUpgrade calls POST /rooms/{roomId}/upgrade.
func upgUpgrade(cli *mautrix.Client, room id.RoomID, body map[string]any) (id.RoomID, error) {
	var resp struct {
		ReplacementRoom id.RoomID `json:"replacement_room"`
	}
	_, err := cli.MakeRequest(context.Background(), http.MethodPost, cli.BuildClientURL("v3", "rooms", room, "upgrade"), body, &resp)
	return resp.ReplacementRoom, err
}

// upgState reads a state event's content as a generic object.
func upgState(t *testing.T, cli *mautrix.Client, room id.RoomID, typ, key string) map[string]any {
	t.Helper()
	content := map[string]any{}
	if err := cli.StateEvent(context.Background(), room, event.Type{Type: typ, Class: event.StateEventType}, key, &content); err != nil {
		t.Fatalf("state %s/%q of %s: %v", typ, key, room, err)
	}
	return content
}

func upgJSON(v any) string {
	raw, _ := json.Marshal(v)
	return string(raw)
}

// TestUpgradeRoom upgrades a v10 room to v12 (with an additional
// creator) and checks the whole procedure: errors, the new room's create
// event and copied state, power levels, bans, aliases and canonical alias,
// the directory entry, the tombstone and the old room's restricted power
// levels.
func TestUpgradeRoom(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw")
		bob := s.Register("bob", "pw")
		carol := s.Register("carol", "pw")
		dave := s.Register("dave", "pw")

		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{
			Visibility: "public", RoomVersion: "10", RoomAliasName: "up", Name: "Upgrade me", Topic: "Before",
			PowerLevelOverride: &event.PowerLevelsEventContent{Users: map[id.UserID]int{alice.UserID: 100, bob.UserID: 50}},
			InitialState: []*event.Event{
				{Type: event.StateRoomAvatar, Content: event.Content{Raw: map[string]any{"url": "mxc://hs1.test/avatar"}}},
				{Type: event.StateHistoryVisibility, Content: event.Content{Raw: map[string]any{"history_visibility": "world_readable"}}},
				{Type: event.StateServerACL, Content: event.Content{Raw: map[string]any{"allow": []string{"*"}}}},
				{Type: event.Type{Type: "org.example.custom", Class: event.StateEventType}, Content: event.Content{Raw: map[string]any{"x": 1}}},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		old := created.RoomID
		for _, cli := range []*mautrix.Client{bob, carol, dave} {
			if _, err := cli.JoinRoomByID(ctx, old); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := alice.BanUser(ctx, old, &mautrix.ReqBanUser{UserID: carol.UserID, Reason: "spam"}); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.CreateAlias(ctx, "#up2:hs1.test", old); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.SendStateEvent(ctx, old, event.StateCanonicalAlias, "", map[string]any{
			"alias": "#up:hs1.test", "alt_aliases": []string{"#up2:hs1.test", "#far:elsewhere.test"},
		}); err != nil {
			t.Fatal(err)
		}
		_, err = alice.SendText(ctx, old, "last words")
		if err != nil {
			t.Fatal(err)
		}

		// Errors: no version, unknown version, unknown room, no power.
		_, err = upgUpgrade(alice, old, map[string]any{})
		testserver.WantHTTPError(t, "missing new_version", err, http.StatusBadRequest, "M_MISSING_PARAM")
		_, err = upgUpgrade(alice, old, map[string]any{"new_version": "999"})
		testserver.WantHTTPError(t, "unknown version", err, http.StatusBadRequest, "M_UNSUPPORTED_ROOM_VERSION")
		_, err = upgUpgrade(alice, "!nowhere:hs1.test", map[string]any{"new_version": "11"})
		testserver.WantHTTPError(t, "unknown room", err, http.StatusNotFound, "M_NOT_FOUND")
		_, err = upgUpgrade(bob, old, map[string]any{"new_version": "12"})
		testserver.WantHTTPError(t, "bob (power 50) upgrades", err, http.StatusForbidden, "M_FORBIDDEN")
		_, err = upgUpgrade(carol, old, map[string]any{"new_version": "12"})
		testserver.WantHTTPError(t, "banned carol upgrades", err, http.StatusForbidden, "M_FORBIDDEN")

		newRoom, err := upgUpgrade(alice, old, map[string]any{"new_version": "12", "additional_creators": []string{bob.UserID.String()}})
		if err != nil {
			t.Fatalf("upgrade: %v", err)
		}
		if newRoom == "" || newRoom == old {
			t.Fatalf("replacement room %q", newRoom)
		}

		// The old room: tombstone, restricted power levels.
		tomb := upgState(t, alice, old, "m.room.tombstone", "")
		if tomb["replacement_room"] != string(newRoom) || tomb["body"] == "" {
			t.Fatalf("tombstone: %v", tomb)
		}
		oldPL := upgState(t, alice, old, "m.room.power_levels", "")
		if oldPL["events_default"] != float64(50) || oldPL["invite"] != float64(50) {
			t.Fatalf("old room power levels not restricted: %v", oldPL)
		}
		if _, err := dave.SendText(ctx, old, "still here?"); err == nil {
			t.Fatal("dave (power 0) could still speak in the old room")
		}

		// The new room's create event.
		create := upgState(t, alice, newRoom, "m.room.create", "")
		pred, _ := create["predecessor"].(map[string]any)
		// A v12 predecessor names no event (MSC4291, as Synapse).
		if create["room_version"] != "12" || pred["room_id"] != string(old) || pred["event_id"] != nil {
			t.Fatalf("create content: %v", create)
		}
		if upgJSON(create["additional_creators"]) != upgJSON([]string{bob.UserID.String()}) {
			t.Fatalf("additional_creators: %v", create["additional_creators"])
		}

		// Copied state; the custom event stays behind.
		for typ, want := range map[string]string{
			"m.room.name":               `"Upgrade me"`,
			"m.room.join_rules":         `"public"`,
			"m.room.history_visibility": `"world_readable"`,
			"m.room.avatar":             `"mxc://hs1.test/avatar"`,
			"m.room.server_acl":         `["*"]`,
		} {
			content := upgState(t, alice, newRoom, typ, "")
			found := false
			for _, v := range content {
				if upgJSON(v) == want {
					found = true
				}
			}
			if !found {
				t.Fatalf("%s in the new room: %v, want a value %s", typ, content, want)
			}
		}
		if topic := upgState(t, alice, newRoom, "m.room.topic", ""); topic["topic"] != "Before" {
			t.Fatalf("topic: %v", topic)
		}
		if err := alice.StateEvent(ctx, newRoom, event.Type{Type: "org.example.custom", Class: event.StateEventType}, "", &map[string]any{}); err == nil {
			t.Fatal("a non-spec state event was copied")
		}

		// Power levels: the v12 creators left out of users, others kept.
		pl := upgState(t, alice, newRoom, "m.room.power_levels", "")
		users, _ := pl["users"].(map[string]any)
		if _, ok := users[alice.UserID.String()]; ok {
			t.Fatalf("creator alice in v12 users: %v", users)
		}
		if _, ok := users[bob.UserID.String()]; ok {
			t.Fatalf("additional creator bob in v12 users: %v", users)
		}
		if pl["events_default"] != float64(0) || pl["state_default"] != float64(50) {
			t.Fatalf("new room power levels: %v", pl)
		}
		// bob is a creator: once joined, he may send anything.
		if _, err := bob.JoinRoomByID(ctx, newRoom); err != nil {
			t.Fatalf("bob joins the new room: %v", err)
		}
		if _, err := bob.SendStateEvent(ctx, newRoom, event.StatePowerLevels, "", pl); err != nil {
			t.Fatalf("creator bob sends power levels: %v", err)
		}

		// Bans carry over.
		if m := upgState(t, alice, newRoom, "m.room.member", carol.UserID.String()); m["membership"] != "ban" || m["reason"] != "spam" {
			t.Fatalf("carol in the new room: %v", m)
		}
		if _, err := carol.JoinRoomByID(ctx, newRoom); err == nil {
			t.Fatal("banned carol joined the new room")
		}

		// Local aliases moved; the canonical alias split between the rooms.
		for _, alias := range []id.RoomAlias{"#up:hs1.test", "#up2:hs1.test"} {
			res, err := alice.ResolveAlias(ctx, alias)
			if err != nil || res.RoomID != newRoom {
				t.Fatalf("%s resolves to %+v %v", alias, res, err)
			}
		}
		if list, err := alice.GetAliases(ctx, newRoom); err != nil || len(list.Aliases) != 2 {
			t.Fatalf("new room aliases: %+v %v", list, err)
		}
		if list, err := alice.GetAliases(ctx, old); err != nil || len(list.Aliases) != 0 {
			t.Fatalf("old room aliases: %+v %v", list, err)
		}
		newCanon := upgState(t, alice, newRoom, "m.room.canonical_alias", "")
		if newCanon["alias"] != "#up:hs1.test" || upgJSON(newCanon["alt_aliases"]) != `["#up2:hs1.test"]` {
			t.Fatalf("new canonical alias: %v", newCanon)
		}
		oldCanon := upgState(t, alice, old, "m.room.canonical_alias", "")
		if _, ok := oldCanon["alias"]; ok || upgJSON(oldCanon["alt_aliases"]) != `["#far:elsewhere.test"]` {
			t.Fatalf("old canonical alias: %v", oldCanon)
		}

		// The directory entry moved.
		if v := dirVisibility(t, alice, newRoom); v != "public" {
			t.Fatalf("new room visibility %q", v)
		}
		if v := dirVisibility(t, alice, old); v != "private" {
			t.Fatalf("old room visibility %q", v)
		}

		// The replacement room has a tombstone of its own only once upgraded again.
		if err := alice.StateEvent(ctx, newRoom, event.StateTombstone, "", &map[string]any{}); err == nil {
			t.Fatal("new room already tombstoned")
		}
	})
}

// TestUpgradeRoomPowerLevels upgrades v11 to v11 and v12 to v11: users'
// power levels are kept, v12 creators keep their power as level 100 in a
// version without privileged creators, and a user who may tombstone but
// lacks the power to copy every state event is raised only while the new
// room is set up.
func TestUpgradeRoomPowerLevels(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw")
		bob := s.Register("bob", "pw")

		// v11 -> v11, upgraded by bob, who may tombstone (60) but not send
		// power levels (100).
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{
			Preset: "public_chat", RoomVersion: "11", Name: "Eleven",
			PowerLevelOverride: &event.PowerLevelsEventContent{
				Users:  map[id.UserID]int{alice.UserID: 100, bob.UserID: 60},
				Events: map[string]int{"m.room.tombstone": 60, "m.room.power_levels": 100, "m.room.name": 50},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		old := created.RoomID
		if _, err := bob.JoinRoomByID(ctx, old); err != nil {
			t.Fatal(err)
		}
		newRoom, err := upgUpgrade(bob, old, map[string]any{"new_version": "11", "additional_creators": []string{alice.UserID.String()}})
		if err != nil {
			t.Fatalf("bob upgrades: %v", err)
		}
		create := upgState(t, bob, newRoom, "m.room.create", "")
		if create["room_version"] != "11" || create["predecessor"].(map[string]any)["room_id"] != string(old) {
			t.Fatalf("create: %v", create)
		}
		if _, ok := create["additional_creators"]; ok {
			t.Fatalf("additional_creators in a v11 room: %v", create)
		}
		if _, ok := create["creator"]; ok {
			t.Fatalf("creator key in a v11 create event: %v", create)
		}
		if name := upgState(t, bob, newRoom, "m.room.name", ""); name["name"] != "Eleven" {
			t.Fatalf("name: %v", name)
		}
		pl := upgState(t, bob, newRoom, "m.room.power_levels", "")
		users := pl["users"].(map[string]any)
		if users[alice.UserID.String()] != float64(100) || users[bob.UserID.String()] != float64(60) {
			t.Fatalf("new room users after the raise was dropped: %v", users)
		}
		// bob could not restrict the old room (power levels need 100).
		oldPL := upgState(t, alice, old, "m.room.power_levels", "")
		if oldPL["events_default"] != float64(0) {
			t.Fatalf("old room restricted by a user without the power: %v", oldPL)
		}
		if tomb := upgState(t, alice, old, "m.room.tombstone", ""); tomb["replacement_room"] != string(newRoom) {
			t.Fatalf("tombstone: %v", tomb)
		}

		// v12 -> v11: the v12 creator alice becomes a level-100 user.
		v12, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", RoomVersion: "12",
			PowerLevelOverride: &event.PowerLevelsEventContent{Users: map[id.UserID]int{bob.UserID: 50}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bob.JoinRoomByID(ctx, v12.RoomID); err != nil {
			t.Fatal(err)
		}
		down, err := upgUpgrade(alice, v12.RoomID, map[string]any{"new_version": "11"})
		if err != nil {
			t.Fatalf("v12 -> v11: %v", err)
		}
		if pred, _ := upgState(t, alice, down, "m.room.create", "")["predecessor"].(map[string]any); pred["event_id"] == nil {
			t.Fatalf("v11 predecessor names no event: %v", pred)
		}
		users = upgState(t, alice, down, "m.room.power_levels", "")["users"].(map[string]any)
		if users[alice.UserID.String()] != float64(100) || users[bob.UserID.String()] != float64(50) {
			t.Fatalf("v12 -> v11 users: %v", users)
		}
		if oldPL := upgState(t, alice, v12.RoomID, "m.room.power_levels", ""); oldPL["events_default"] != float64(50) || oldPL["invite"] != float64(50) {
			t.Fatalf("v12 room not restricted: %v", oldPL)
		}
	})
}
