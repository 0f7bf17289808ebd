package keys

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// TestDeviceUpdateChain: each local device change is published with the
// position of the user's change before it as prev_id (server-server
// spec "Device Management"), so that other servers can apply them in
// order: a key upload, a rename, and a removal of two devices at one
// position (the second following on from the first).
func TestDeviceUpdateChain(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL)
		ctx := context.Background()
		var got []DeviceUpdate
		b := bus.New()
		b.Subscribe("test", func(_ context.Context, c bus.Change) { got = append(got, c.(DeviceUpdate)) }, TopicDevice)
		f.svc.bus = b
		f.device(t, "alice", "DEV1")
		f.device(t, "alice", "DEV2")
		for _, d := range []string{"DEV1", "DEV2"} {
			pub, priv, _ := ed25519.GenerateKey(nil)
			if _, err := f.svc.Upload(ctx, alice, d, UploadRequest{DeviceKeys: signedDeviceKeys(t, alice, d, pub, priv, nil)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.svc.DeviceRenamed(ctx, alice, "DEV1"); err != nil {
			t.Fatal(err)
		}
		if err := f.svc.DevicesRemoved(ctx, alice, []string{"DEV1", "DEV2"}); err != nil {
			t.Fatal(err)
		}
		if len(got) != 5 {
			t.Fatalf("updates: %+v", got)
		}
		if got[0].PrevID != 0 {
			t.Errorf("the first update's prev_id: %d, want none", got[0].PrevID)
		}
		for i := 1; i < len(got); i++ {
			if got[i].PrevID != got[i-1].StreamID || got[i].StreamID < got[i-1].StreamID {
				t.Errorf("update %d (%+v) does not follow on from %+v", i, got[i], got[i-1])
			}
		}
		if got[3].StreamID != got[4].StreamID || !got[3].Deleted || !got[4].Deleted {
			t.Errorf("the removal: %+v %+v", got[3], got[4])
		}
		if last, err := f.db.LastDeviceListPos(ctx, alice); err != nil || last != got[4].StreamID {
			t.Errorf("last position %d (%v), want the last update's %d", last, err, got[4].StreamID)
		}
	})
}

var updateSeeds = []string{
	`{"user_id":"@carol:hs2.test","device_id":"D","stream_id":6,"prev_id":[5],"deleted":true}`,
	`{"user_id":"@carol:hs2.test","device_id":"D","stream_id":6,"prev_id":[5],"device_display_name":"x\u0000"}`,
	`{"user_id":"@carol:hs2.test","device_id":"D","stream_id":6,"prev_id":[5],"keys":{"user_id":"@carol:hs2.test","device_id":"D","algorithms":["a"],"keys":{"ed25519:D":"AAAA"},"signatures":{}}}`,
	`{"user_id":"@carol:hs2.test","device_id":"D","stream_id":6,"prev_id":[5],"keys":{"user_id":"@carol:hs2.test","device_id":"D","keys":{"ed25519:D":5}}}`,
	`{"user_id":"@carol:hs2.test","device_id":"D","stream_id":6,"prev_id":[5],"keys":[1]}`,
	`{"user_id":"@carol:hs2.test","device_id":"D","stream_id":-1,"prev_id":[]}`,
	"{\"user_id\":\"@carol:hs2.test\",\"device_id\":\"\xff\",\"stream_id\":6,\"prev_id\":[5],\"device_display_name\":\"\xff\"}",
}

// FuzzApplyUpdate: m.device_list_update EDUs come from other servers.
// Whatever one holds, applying it to a cached list fails only with a
// database error, and leaves a list that is a JSON object of device
// objects.
func FuzzApplyUpdate(f *testing.F) {
	for _, s := range updateSeeds {
		f.Add([]byte(s))
	}
	fx := newFixture(f, testdb.NewURL(f, "sqlite"))
	ctx := context.Background()
	const carol = "@carol:hs2.test"
	f.Fuzz(func(t *testing.T, content []byte) {
		var edu deviceListUpdate
		if json.Unmarshal(content, &edu) != nil || edu.UserID != carol {
			return
		}
		cached := `{"D":{"user_id":"@carol:hs2.test","device_id":"D","keys":{}}}`
		if err := fx.db.StoreRemoteDevices(ctx, carol, store.RemoteDeviceList{Devices: cached, FetchedTS: 1, StreamID: 5}, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := fx.svc.applyUpdate(ctx, edu); err != nil {
			t.Fatalf("%s: %v", content, err)
		}
		l, err := fx.db.RemoteDevices(ctx, carol)
		if err != nil {
			t.Fatal(err)
		}
		var devices map[string]map[string]any
		if err := json.Unmarshal([]byte(l.Devices), &devices); err != nil {
			t.Fatalf("%s left %s: %v", content, l.Devices, err)
		}
	})
}

// TestCachedListFreshness: a cached remote list answers while younger
// than an hour and not stale; past the hour only while its owner's
// server keeps it (a known stream_id and a shared room), which a user
// in no room of this server is not.
func TestCachedListFreshness(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL)
		ctx := context.Background()
		const carol = "@carol:hs2.test"
		now := time.Now()
		f.svc.now = func() time.Time { return now }
		held := func() bool {
			t.Helper()
			_, ok, err := f.svc.CachedDevices(ctx, carol)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if held() {
			t.Fatal("a list never fetched is held")
		}
		l := store.RemoteDeviceList{Devices: `{}`, FetchedTS: now.UnixMilli(), StreamID: 7}
		if err := f.db.StoreRemoteDevices(ctx, carol, l, 0); err != nil {
			t.Fatal(err)
		}
		if !held() {
			t.Fatal("a list just fetched is not held")
		}
		now = now.Add(remoteCacheTTL + time.Minute)
		if held() {
			t.Fatal("an hour-old list of a user sharing no room is held")
		}
		now = now.Add(-remoteCacheTTL)
		if err := f.db.MarkRemoteDevicesStale(ctx, carol, 0); err != nil {
			t.Fatal(err)
		}
		if held() {
			t.Fatal("a stale list is held")
		}
	})
}
