package federation_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// cachedDevices is what s holds of a remote user's devices without
// asking their server (nil: nothing fresh).
func cachedDevices(t *testing.T, s *testserver.Server, userID string) map[string]any {
	t.Helper()
	raw, ok, err := s.Keys().CachedDevices(context.Background(), userID)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return nil
	}
	out := map[string]any{}
	for id, k := range raw {
		var v map[string]any
		_ = json.Unmarshal(k, &v)
		out[id] = v
	}
	return out
}

// waitCached waits until s holds, for userID, a device list that ok
// accepts, without asking the user's server.
func waitCached(t *testing.T, s *testserver.Server, userID, what string, ok func(devices map[string]any) bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		devices := cachedDevices(t, s, userID)
		if devices != nil && ok(devices) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never held %s (last: %v)", s.Config.ServerName, what, devices)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func hasDevices(ids ...string) func(map[string]any) bool {
	return func(devices map[string]any) bool {
		if len(devices) != len(ids) {
			return false
		}
		for _, id := range ids {
			if devices[id] == nil {
				return false
			}
		}
		return true
	}
}

// deleteDevice deletes a device through User-Interactive Auth.
func deleteDevice(t *testing.T, s *testserver.Server, c *mautrix.Client, deviceID, user, password string) {
	t.Helper()
	path := "/_matrix/client/v3/devices/" + deviceID
	st, body := s.Do(t, http.MethodDelete, path, c.AccessToken, map[string]any{})
	testserver.WantStatus(t, "delete challenge", st, body, http.StatusUnauthorized)
	st, body = s.Do(t, http.MethodDelete, path, c.AccessToken, map[string]any{"auth": map[string]any{
		"type": "m.login.password", "session": body["session"], "password": password,
		"identifier": map[string]any{"type": "m.id.user", "user": user}}})
	testserver.WantStatus(t, "delete device", st, body, http.StatusOK)
}

func changedIn(resp *mautrix.RespSync, userID string) bool {
	return slices.ContainsFunc(resp.DeviceLists.Changed, func(u id.UserID) bool { return string(u) == userID })
}

// TestDeviceListsFollowRemoteUser: alice@hs1 joins bob's room on hs2.
// hs2 fetches her device list at once (a remote user joined a room of
// its users), hs1 fetches bob's (alice joined a small room), and then keeps it by the m.device_list_update chain hs1
// sends: a new device, a rename and a deletion each reach hs2's cache
// without bob's queries asking hs1, and bob's /sync lists alice under
// device_lists.changed. At the end hs1 is stopped and bob's query is
// answered in full from hs2.
func TestDeviceListsFollowRemoteUser(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2 := net.Servers[0], net.Servers[1]
		alice := hs1.Register("alice", "pw-alice")
		bob := hs2.Register("bob", "pw-bob")
		aliceID, phone := string(alice.UserID), string(alice.DeviceID)
		uploadE2EKeys(t, hs1, alice.AccessToken, aliceID, phone, 0, false)
		bobID := string(bob.UserID)
		uploadE2EKeys(t, hs2, bob.AccessToken, bobID, string(bob.DeviceID), 0, false)
		created, err := bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := alice.JoinRoom(ctx, created.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{"hs2.test"}}); err != nil {
			t.Fatal(err)
		}
		waitCached(t, hs2, aliceID, "alice's device after her join", hasDevices(phone))
		// And hs1 holds bob's: it tracks a small room's members when a
		// local user joins (hs2 also sends it, hs1 being new to the
		// room, but that may arrive before hs1 has stored the room).
		waitCached(t, hs1, bobID, "bob's device after alice's join", hasDevices(string(bob.DeviceID)))
		since := testserver.SyncUntil(t, bob, "", "a first sync", func(*mautrix.RespSync) bool { return true })

		laptop := hs1.Login("alice", "pw-alice")
		laptopID := string(laptop.DeviceID)
		uploadE2EKeys(t, hs1, laptop.AccessToken, aliceID, laptopID, 0, false)
		waitCached(t, hs2, aliceID, "alice's new laptop", hasDevices(phone, laptopID))
		testserver.SyncUntil(t, bob, since, "alice's device-list change", func(r *mautrix.RespSync) bool { return changedIn(r, aliceID) })

		st, body := hs1.Do(t, http.MethodPut, "/_matrix/client/v3/devices/"+laptopID, laptop.AccessToken, map[string]any{"display_name": "work laptop"})
		testserver.WantStatus(t, "rename", st, body, http.StatusOK)
		waitCached(t, hs2, aliceID, "the laptop's new name", func(d map[string]any) bool {
			l, _ := d[laptopID].(map[string]any)
			u, _ := l["unsigned"].(map[string]any)
			return u["device_display_name"] == "work laptop"
		})

		deleteDevice(t, hs1, alice, laptopID, "alice", "pw-alice")
		waitCached(t, hs2, aliceID, "alice's list without the laptop", hasDevices(phone))

		st, ud := net.SignedRequest(t, hs2, hs1, http.MethodGet, "/_matrix/federation/v1/user/devices/"+aliceID, nil)
		testserver.WantStatus(t, "user/devices", st, ud, http.StatusOK)
		streamID := int64(ud["stream_id"].(float64))

		hs1.Stop()
		st, body = hs2.Do(t, http.MethodPost, "/_matrix/client/v3/keys/query", bob.AccessToken, map[string]any{
			"device_keys": map[string]any{aliceID: []string{}}, "timeout": 2000})
		testserver.WantStatus(t, "query with hs1 down", st, body, http.StatusOK)
		if d := body["device_keys"].(map[string]any)[aliceID].(map[string]any); len(d) != 1 || d[phone] == nil || len(body["failures"].(map[string]any)) != 0 {
			t.Fatalf("query with hs1 down: %v", body)
		}

		// With hs1 down nothing can be refetched: an update following on
		// from the cached list (prev_id = its stream_id) is applied in
		// place; one after a gap leaves the list stale.
		update := func(streamID, prevID int64) {
			t.Helper()
			edu, _ := json.Marshal(map[string]any{"user_id": aliceID, "device_id": phone, "deleted": true,
				"stream_id": streamID, "prev_id": []int64{prevID}})
			if err := hs2.Keys().HandleDeviceListUpdate(ctx, "hs1.test", edu); err != nil {
				t.Fatal(err)
			}
		}
		update(streamID+1, streamID)
		if d := cachedDevices(t, hs2, aliceID); d == nil || len(d) != 0 {
			t.Fatalf("after an update in the chain: %v, want a held empty list", d)
		}
		update(streamID+10, streamID+9)
		if d := cachedDevices(t, hs2, aliceID); d != nil {
			t.Fatalf("after an update past a gap: %v, want the list stale", d)
		}
	})
}

// TestDeviceListsReachNewServers: servers that newly share a room with a
// user learn their devices without their users asking. alice@hs1 shares
// a room with bob@hs2 only; she joins carol's room on hs3, which then
// holds her devices, and her next device too. dave@hs3 joins alice's
// room on hs1: alice's /sync lists him under device_lists.changed and
// hs1 holds his devices.
func TestDeviceListsReachNewServers(t *testing.T) {
	testserver.EachEngineNetwork(t, 3, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2, hs3 := net.Servers[0], net.Servers[1], net.Servers[2]
		alice := hs1.Register("alice", "pw-alice")
		bob := hs2.Register("bob", "pw-bob")
		carol := hs3.Register("carol", "pw-carol")
		dave := hs3.Register("dave", "pw-dave")
		aliceID, phone := string(alice.UserID), string(alice.DeviceID)
		daveID := string(dave.UserID)
		uploadE2EKeys(t, hs1, alice.AccessToken, aliceID, phone, 0, false)
		uploadE2EKeys(t, hs3, dave.AccessToken, daveID, string(dave.DeviceID), 0, false)

		aliceRoom, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bob.JoinRoom(ctx, aliceRoom.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
			t.Fatal(err)
		}
		carolRoom, err := carol.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := alice.JoinRoom(ctx, carolRoom.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{"hs3.test"}}); err != nil {
			t.Fatal(err)
		}
		waitCached(t, hs3, aliceID, "alice's device after she joined", hasDevices(phone))
		laptop := hs1.Login("alice", "pw-alice")
		uploadE2EKeys(t, hs1, laptop.AccessToken, aliceID, string(laptop.DeviceID), 0, false)
		waitCached(t, hs3, aliceID, "alice's new laptop", hasDevices(phone, string(laptop.DeviceID)))

		since := testserver.SyncUntil(t, alice, "", "her room", func(r *mautrix.RespSync) bool { return r.Rooms.Join[aliceRoom.RoomID] != nil })
		if _, err := dave.JoinRoom(ctx, aliceRoom.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
			t.Fatal(err)
		}
		testserver.SyncUntil(t, alice, since, "dave under device_lists.changed", func(r *mautrix.RespSync) bool { return changedIn(r, daveID) })
		waitCached(t, hs1, daveID, "dave's device after he joined", hasDevices(string(dave.DeviceID)))
	})
}
