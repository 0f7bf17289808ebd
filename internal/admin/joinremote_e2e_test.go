package admin_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestAdminJoinRemoteRoomAndMakeRoomAdmin: hs2's admin joins hs2's user
// to rooms only hs1 is in, over federation, by hs1's alias and by room
// ID with server_name, as Synapse's admin join; a private room refuses
// the join. make_room_admin on hs2 answers as Synapse: 400 "Server not
// in room" for a room hs2 has no state of, 400 "No local admin user in
// room" while no hs2 user has power there, and once one has, it raises
// another hs2 user through them.
func TestAdminJoinRemoteRoomAndMakeRoomAdmin(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, func(_ int, c *config.Config) { c.Registration.SharedSecret = admSecret },
		func(t *testing.T, net *testserver.Network) {
			ctx := context.Background()
			hs1, hs2 := net.Servers[0], net.Servers[1]
			alice := hs1.Register("alice", "password1234")
			bob := hs2.Register("bob", "password1234")
			admin := hs2.RegisterAdmin("root", "password1234")
			pub, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", RoomAliasName: "pub"})
			if err != nil {
				t.Fatal(err)
			}
			other, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
			if err != nil {
				t.Fatal(err)
			}
			priv, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
			if err != nil {
				t.Fatal(err)
			}
			join := func(target, query string) (int, map[string]any) {
				t.Helper()
				return hs2.Do(t, "POST", admBase+"/join/"+url.PathEscape(target)+query, admin.AccessToken, map[string]any{"user_id": bob.UserID.String()})
			}
			joined := func() []id.RoomID {
				t.Helper()
				resp, err := bob.JoinedRooms(ctx)
				if err != nil {
					t.Fatal(err)
				}
				return resp.JoinedRooms
			}

			status, body := join("#pub:hs1.test", "")
			testserver.WantStatus(t, "join by remote alias", status, body, http.StatusOK)
			if body["room_id"] != pub.RoomID.String() || !slices.Contains(joined(), pub.RoomID) {
				t.Fatalf("join by alias: %v, bob in %v", body, joined())
			}
			status, body = join(other.RoomID.String(), "?server_name=hs1.test")
			testserver.WantStatus(t, "join by room ID", status, body, http.StatusOK)
			if !slices.Contains(joined(), other.RoomID) {
				t.Fatalf("bob not in the room joined by ID: %v", joined())
			}
			// hs1 sees bob's join.
			members, err := alice.JoinedMembers(ctx, other.RoomID)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := members.Joined[bob.UserID]; !ok {
				t.Fatalf("hs1 does not see bob joined: %v", members.Joined)
			}
			status, body = join(priv.RoomID.String(), "?server_name=hs1.test")
			testserver.WantError(t, "join a private remote room", status, body, http.StatusForbidden, "M_FORBIDDEN")
			status, body = join(other.RoomID.String(), "?server_name=bad%20name")
			testserver.WantError(t, "bad server_name", status, body, http.StatusBadRequest, "M_INVALID_PARAM")

			makeAdmin := func(room id.RoomID, user id.UserID) (int, map[string]any) {
				t.Helper()
				return hs2.Do(t, "POST", admRooms+"/"+room.String()+"/make_room_admin", admin.AccessToken, map[string]any{"user_id": user.String()})
			}
			status, body = makeAdmin(priv.RoomID, admin.UserID)
			testserver.WantStatus(t, "make_room_admin, room unknown to hs2", status, body, http.StatusBadRequest)
			if body["error"] != "Server not in room" {
				t.Fatalf("room unknown to hs2: %v", body)
			}
			status, body = makeAdmin(pub.RoomID, admin.UserID)
			testserver.WantStatus(t, "make_room_admin, no local power", status, body, http.StatusBadRequest)
			if body["error"] != "No local admin user in room" {
				t.Fatalf("remote room without a local admin: %v", body)
			}

			// Alice makes bob a room admin; hs2's admin can now raise root
			// through bob.
			var pl event.PowerLevelsEventContent
			if err := alice.StateEvent(ctx, pub.RoomID, event.StatePowerLevels, "", &pl); err != nil {
				t.Fatal(err)
			}
			if pl.Users == nil {
				pl.Users = map[id.UserID]int{}
			}
			pl.Users[bob.UserID] = 100
			if _, err := alice.SendStateEvent(ctx, pub.RoomID, event.StatePowerLevels, "", &pl); err != nil {
				t.Fatal(err)
			}
			// hs2 has the new power levels once bob reads them there.
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				var seen event.PowerLevelsEventContent
				if err := bob.StateEvent(ctx, pub.RoomID, event.StatePowerLevels, "", &seen); err == nil && seen.Users[bob.UserID] == 100 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("hs2 never received bob's power")
				}
			}
			status, body = makeAdmin(pub.RoomID, admin.UserID)
			testserver.WantStatus(t, "make_room_admin through bob", status, body, http.StatusOK)
			if _, err := admin.JoinRoom(ctx, pub.RoomID.String(), nil); err != nil {
				t.Fatal(err)
			}
			var after event.PowerLevelsEventContent
			if err := admin.StateEvent(ctx, pub.RoomID, event.StatePowerLevels, "", &after); err != nil {
				t.Fatal(err)
			}
			if after.Users[admin.UserID] != 100 {
				t.Fatalf("root's level after make_room_admin: %v", after.Users)
			}
		})
}
