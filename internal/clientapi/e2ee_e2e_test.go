//go:build goolm

package clientapi_test

import (
	"net/http"
	"slices"
	"testing"

	"github.com/myelin-chat/myelin/internal/testserver"
	"github.com/myelin-chat/myelin/internal/testserver/cryptoclient"
)

// TestE2EEMegolmRoundTrip: two real Olm clients on one server. Each
// uploads device and one-time keys; alice's machine queries bob's keys,
// claims a one-time key, sends him the room key in an Olm-encrypted
// to-device message and the Megolm-encrypted text into the room; bob's
// machine receives both through /sync and decrypts the text. Then the
// other way round.
func TestE2EEMegolmRoundTrip(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := cryptoclient.New(t, s.Register("alice", "pw-alice"))
		bob := cryptoclient.New(t, s.Register("bob", "pw-bob"))
		roomID := alice.EncryptedRoom(bob)

		sent := alice.SendText(roomID, "hello bob, privately")
		got := bob.Decrypt(sent)
		if body := got.Content.AsMessage().Body; body != "hello bob, privately" || got.Sender != alice.UserID {
			t.Fatalf("bob decrypted %q from %s", body, got.Sender)
		}
		reply := bob.SendText(roomID, "hello alice")
		if body := alice.Decrypt(reply).Content.AsMessage().Body; body != "hello alice" {
			t.Fatalf("alice decrypted %q", body)
		}
	})
}

// TestE2EEDeviceListOnNewLogin: bob shares an encrypted room with alice;
// alice logs in on a laptop, whose machine uploads its keys. Bob's
// incremental /sync lists alice in device_lists.changed, his machine
// fetches her keys again and finds the laptop, and his next message's
// room key reaches the laptop, which decrypts it. Carol, who shares no
// room with alice, is not told.
func TestE2EEDeviceListOnNewLogin(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := cryptoclient.New(t, s.Register("alice", "pw-alice"))
		bob := cryptoclient.New(t, s.Register("bob", "pw-bob"))
		carol := s.Register("carol", "pw-carol")
		roomID := alice.EncryptedRoom(bob)
		first := bob.SendText(roomID, "before the laptop")
		alice.Decrypt(first)
		carolSince := keysSync(t, carol, "", 0).NextBatch
		if n := bob.Devices(alice.UserID); n != 1 {
			t.Fatalf("bob knows %d devices of alice, want 1", n)
		}

		bob.ForgetDeviceListChanges()
		laptop := cryptoclient.New(t, s.Login("alice", "pw-alice"))
		bob.SyncUntil("alice's new device", func() bool {
			return bob.SawDeviceListChange(alice.UserID) && bob.Devices(alice.UserID) == 2
		})
		laptop.SyncUntil("the room", func() bool { return laptop.Joined(roomID, bob.UserID) })
		second := bob.SendText(roomID, "hello laptop")
		if body := laptop.Decrypt(second).Content.AsMessage().Body; body != "hello laptop" {
			t.Fatalf("the laptop decrypted %q", body)
		}
		if changed := keysSync(t, carol, carolSince, 0).DeviceLists.Changed; slices.Contains(changed, string(alice.UserID)) {
			t.Fatalf("carol, in no room with alice, is told of her devices: %v", changed)
		}
	})
}

// TestSyncOneTimeKeyCounts: /sync reports how many one-time keys the
// device has left and which fallback keys are unused; both drop as
// another user claims them, the fallback key once the one-time keys are
// gone. The fallback list stays in the response when empty, as the spec
// requires: clients read its absence as no fallback key support.
func TestSyncOneTimeKeyCounts(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw-alice")
		bob := s.Register("bob", "pw-bob")
		aliceID, dev := string(alice.UserID), string(alice.DeviceID)
		uploadDeviceKeys(t, s, alice, 2)
		resp := keysSync(t, alice, "", 0)
		if resp.OTKCounts["signed_curve25519"] != 2 || !slices.Equal(resp.UnusedFallback, []string{"signed_curve25519"}) {
			t.Fatalf("initial sync: counts %v, unused fallback %v", resp.OTKCounts, resp.UnusedFallback)
		}
		claim := func() {
			t.Helper()
			st, body := s.Do(t, http.MethodPost, "/_matrix/client/v3/keys/claim", tok(bob), map[string]any{
				"one_time_keys": map[string]any{aliceID: map[string]string{dev: "signed_curve25519"}}})
			testserver.WantStatus(t, "claim", st, body, http.StatusOK)
		}
		since := resp.NextBatch
		for _, want := range []int{1, 0} {
			claim()
			resp = keysSync(t, alice, since, 0)
			if resp.OTKCounts["signed_curve25519"] != want || len(resp.UnusedFallback) != 1 {
				t.Fatalf("after a claim: counts %v (want %d), unused fallback %v", resp.OTKCounts, want, resp.UnusedFallback)
			}
			since = resp.NextBatch
		}
		claim() // the fallback key
		raw := testserver.Send(t, nil, http.MethodGet, s.URL+"/_matrix/client/v3/sync?timeout=0&since="+since, tok(alice), nil)
		unused, ok := raw.JSON["device_unused_fallback_key_types"].([]any)
		if !ok || len(unused) != 0 {
			t.Fatalf("after the fallback key was claimed: device_unused_fallback_key_types %s", raw.Raw)
		}
	})
}

// TestToDeviceOnceAcrossRestart: a to-device message is delivered until
// the device syncs with a token past it, and never after, also across a
// restart of the server. A sync with a token from before the message
// (the client lost the response) gets it again, once.
func TestToDeviceOnceAcrossRestart(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw-alice")
		bob := s.Register("bob", "pw-bob")
		send := func(txn string) {
			t.Helper()
			st, body := s.Do(t, http.MethodPut, "/_matrix/client/v3/sendToDevice/m.test/"+txn, tok(bob), map[string]any{
				"messages": map[string]any{string(alice.UserID): map[string]any{string(alice.DeviceID): map[string]any{"txn": txn}}}})
			testserver.WantStatus(t, "send "+txn, st, body, http.StatusOK)
		}
		// got syncs from since and returns the txn of each message.
		got := func(since string) ([]string, string) {
			t.Helper()
			resp := keysSync(t, alice, since, 0)
			var txns []string
			for _, ev := range resp.ToDevice.Events {
				if ev.Sender != string(bob.UserID) || ev.Type != "m.test" {
					t.Fatalf("to-device event %+v", ev)
				}
				txns = append(txns, ev.Content["txn"].(string))
			}
			return txns, resp.NextBatch
		}
		restart := func() {
			s.Restart()
			s.Repoint(alice)
			s.Repoint(bob)
		}
		t0 := keysSync(t, alice, "", 0).NextBatch

		send("m1")
		if txns, _ := got(t0); !slices.Equal(txns, []string{"m1"}) {
			t.Fatalf("first sync: %v", txns)
		}
		restart()
		// The response was lost: the old token gets the message again.
		txns, t1 := got(t0)
		if !slices.Equal(txns, []string{"m1"}) {
			t.Fatalf("sync from the old token after a restart: %v, want m1 once", txns)
		}
		txns, t2 := got(t1)
		if len(txns) != 0 {
			t.Fatalf("sync past m1: %v", txns)
		}

		send("m2")
		txns, t3 := got(t2)
		if !slices.Equal(txns, []string{"m2"}) {
			t.Fatalf("sync for m2: %v", txns)
		}
		restart()
		if txns, _ := got(t3); len(txns) != 0 {
			t.Fatalf("sync past m2 after a restart: %v", txns)
		}
		// Acknowledged means deleted: not even the old token brings m2 back.
		if txns, _ := got(t2); len(txns) != 0 {
			t.Fatalf("sync from before m2 once it was acknowledged: %v", txns)
		}
	})
}
