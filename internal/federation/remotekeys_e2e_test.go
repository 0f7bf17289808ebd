package federation_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"maunium.net/go/mautrix"

	"github.com/myelin-chat/myelin/internal/testserver"
	"github.com/myelin-chat/myelin/internal/testserver/peer"
)

// crossKey is a cross-signing key of a peer's user: its public key and
// its JSON, signed by signer (nil: unsigned).
type crossKey struct {
	pub  string
	priv ed25519.PrivateKey
	raw  json.RawMessage
}

func newCrossKey(t *testing.T, user, usage string, signer *crossKey) crossKey {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	b64 := base64.RawStdEncoding.EncodeToString(pub)
	raw, err := json.Marshal(map[string]any{"user_id": user, "usage": []string{usage}, "keys": map[string]string{"ed25519:" + b64: b64}})
	if err != nil {
		t.Fatal(err)
	}
	if signer != nil {
		if raw, err = gomatrixserverlib.SignJSON(user, gomatrixserverlib.KeyID("ed25519:"+signer.pub), signer.priv, raw); err != nil {
			t.Fatal(err)
		}
	}
	return crossKey{pub: b64, priv: priv, raw: raw}
}

// peerDeviceList is a device list of one device of a peer's user.
func peerDeviceList(t *testing.T, user string, streamID int64, master, self *crossKey) peer.UserDeviceList {
	t.Helper()
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	b64 := base64.RawStdEncoding.EncodeToString(pub)
	l := peer.UserDeviceList{UserID: user, StreamID: streamID}
	l.Devices = append(l.Devices, peer.UserDevice{DeviceID: "PEERDEV", Keys: mustJSON(t, map[string]any{"user_id": user, "device_id": "PEERDEV",
		"algorithms": []string{"m.olm.v1.curve25519-aes-sha2"},
		"keys":       map[string]string{"ed25519:PEERDEV": b64, "curve25519:PEERDEV": b64}})})
	if master != nil {
		l.MasterKey = master.raw
	}
	if self != nil {
		l.SelfSigningKey = self.raw
	}
	return l
}

func mustJSON(t *testing.T, v any) json.RawMessage {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// queriedKeys is a local user's /keys/query of one remote user: the
// devices, and the public keys of the master and self-signing keys
// ("" when none).
func queriedKeys(t *testing.T, s *testserver.Server, token, user string) (devices int, master, self string, failures map[string]any) {
	t.Helper()
	st, body := s.Do(t, http.MethodPost, "/_matrix/client/v3/keys/query", token, map[string]any{
		"device_keys": map[string]any{user: []string{}}})
	testserver.WantStatus(t, "keys/query", st, body, http.StatusOK)
	dk, _ := body["device_keys"].(map[string]any)
	m, _ := dk[user].(map[string]any)
	pubOf := func(field string) string {
		byUser, _ := body[field].(map[string]any)
		k, _ := byUser[user].(map[string]any)
		keys, _ := k["keys"].(map[string]any)
		for _, v := range keys {
			s, _ := v.(string)
			return s
		}
		return ""
	}
	master, self = pubOf("master_keys"), pubOf("self_signing_keys")
	failures, _ = body["failures"].(map[string]any)
	return len(m), master, self, failures
}

// TestSigningKeyUpdateAppliedInPlace: an m.signing_key_update EDU from a
// remote user's server is checked and stored in the cached list (as
// Synapse's SigningKeyEduUpdater does): the local user sharing a room
// with them sees the change in /sync device_lists.changed, and /keys/query
// returns the new keys without asking the remote server, which here
// refuses every key request after the first fetch. An update whose
// self-signing key the master key did not sign is refused whole.
func TestSigningKeyUpdateAppliedInPlace(t *testing.T) {
	peer.EachEngine(t, 1, nil, func(t *testing.T, net *testserver.Network, p *peer.Peer) {
		ctx := context.Background()
		hs1 := net.Servers[0]
		room := p.CreateRoom(t)
		creator := room.Creator
		m1 := newCrossKey(t, creator, "master", nil)
		s1 := newCrossKey(t, creator, "self_signing", &m1)
		p.SetUserDevices(peerDeviceList(t, creator, 1, &m1, &s1))
		alice := peerJoin(t, hs1, p, room, "alice")
		deadline := time.Now().Add(20 * time.Second)
		for {
			_, ok, err := hs1.Keys().CachedDevices(ctx, creator)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the creator's device list was never fetched")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if n, master, self, _ := queriedKeys(t, hs1, alice.AccessToken, creator); n != 1 || master != m1.pub || self != s1.pub {
			t.Fatalf("before the update: %d devices, master %q, self-signing %q", n, master, self)
		}
		since := testserver.SyncUntil(t, alice, "", "a first sync", func(*mautrix.RespSync) bool { return true })
		p.Refuse(peer.UserDevices, http.StatusInternalServerError)
		p.Refuse(peer.UserKeysQuery, http.StatusInternalServerError)
		asked := p.Hits(peer.UserDevices) + p.Hits(peer.UserKeysQuery)

		m2 := newCrossKey(t, creator, "master", nil)
		s2 := newCrossKey(t, creator, "self_signing", &m2)
		p.SendEDU(t, hs1, "m.signing_key_update", map[string]any{"user_id": creator, "master_key": m2.raw, "self_signing_key": s2.raw})
		testserver.SyncUntil(t, alice, since, "the creator in device_lists.changed", func(r *mautrix.RespSync) bool {
			for _, u := range r.DeviceLists.Changed {
				if u.String() == creator {
					return true
				}
			}
			return false
		})
		if n, master, self, failures := queriedKeys(t, hs1, alice.AccessToken, creator); n != 1 || master != m2.pub || self != s2.pub {
			t.Fatalf("after the update: %d devices, master %q (want %q), self-signing %q (want %q), failures %v",
				n, master, m2.pub, self, s2.pub, failures)
		}

		// A new master key with a self-signing key it did not sign: refused
		// whole. The self-signing key that follows, signed by m2, is then
		// checked against m2 and taken.
		m3 := newCrossKey(t, creator, "master", nil)
		bad := newCrossKey(t, creator, "self_signing", &m2)
		p.SendEDU(t, hs1, "m.signing_key_update", map[string]any{"user_id": creator, "master_key": m3.raw, "self_signing_key": bad.raw})
		s4 := newCrossKey(t, creator, "self_signing", &m2)
		p.SendEDU(t, hs1, "m.signing_key_update", map[string]any{"user_id": creator, "self_signing_key": s4.raw})
		// Keys for a user of another server are not the peer's to send.
		other := newCrossKey(t, "@mallory:hs1.test", "master", nil)
		p.SendEDU(t, hs1, "m.signing_key_update", map[string]any{"user_id": "@mallory:hs1.test", "master_key": other.raw})
		if n, master, self, failures := queriedKeys(t, hs1, alice.AccessToken, creator); n != 1 || master != m2.pub || self != s4.pub {
			t.Fatalf("after a forged and a good update: %d devices, master %q (want %q), self-signing %q (want %q), failures %v",
				n, master, m2.pub, self, s4.pub, failures)
		}
		if got := p.Hits(peer.UserDevices) + p.Hits(peer.UserKeysQuery); got != asked {
			t.Fatalf("hs1 asked the peer for the keys %d times after the updates", got-asked)
		}
	})
}

// TestDeviceListRefetchRetried: an m.device_list_update with a gap in
// prev_id marks the remote user's cached list stale and refetches it;
// when the owner's server refuses /user/devices, the refetch is retried
// with a back-off (Synapse's _maybe_retry_device_resync) until it
// answers, and meanwhile /keys/query answers with the list as known
// instead of failing.
func TestDeviceListRefetchRetried(t *testing.T) {
	peer.EachEngine(t, 1, nil, func(t *testing.T, net *testserver.Network, p *peer.Peer) {
		ctx := context.Background()
		hs1 := net.Servers[0]
		room := p.CreateRoom(t)
		creator := room.Creator
		first := peerDeviceList(t, creator, 1, nil, nil)
		p.SetUserDevices(first)
		alice := peerJoin(t, hs1, p, room, "alice")
		cached := func() int {
			t.Helper()
			devices, ok, err := hs1.Keys().CachedDevices(ctx, creator)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				return -1
			}
			return len(devices)
		}
		waitFor := func(what string, ok func() bool) {
			t.Helper()
			deadline := time.Now().Add(20 * time.Second)
			for !ok() {
				if time.Now().After(deadline) {
					t.Fatalf("never: %s", what)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		waitFor("the creator's list cached", func() bool { return cached() == 1 })

		// A second device, announced with a gap (prev_id 2, the list is at
		// 1), while the peer refuses every key request.
		p.Refuse(peer.UserDevices, http.StatusInternalServerError)
		p.Refuse(peer.UserKeysQuery, http.StatusInternalServerError)
		second := peerDeviceList(t, creator, 3, nil, nil)
		second.Devices = append(second.Devices, first.Devices...)
		second.Devices[0].DeviceID = "PHONE"
		second.Devices[0].Keys = mustJSON(t, map[string]any{"user_id": creator, "device_id": "PHONE",
			"algorithms": []string{"m.olm.v1.curve25519-aes-sha2"}, "keys": map[string]string{"ed25519:PHONE": "cGhvbmU", "curve25519:PHONE": "cGhvbmU"}})
		p.SetUserDevices(second)
		refusedBefore := p.Hits(peer.UserDevices)
		p.SendEDU(t, hs1, "m.device_list_update", map[string]any{"user_id": creator, "device_id": "PHONE",
			"stream_id": 3, "prev_id": []int64{2}, "deleted": false})
		waitFor("a refetch refused", func() bool { return p.Hits(peer.UserDevices) > refusedBefore })
		if n := cached(); n != -1 {
			t.Fatalf("the list after a gap: %d devices, not stale", n)
		}
		// Meanwhile a key query answers with the device known.
		waitFor("a key query answering from the stale list", func() bool {
			n, _, _, failures := queriedKeys(t, hs1, alice.AccessToken, creator)
			return n == 1 && len(failures) == 0
		})
		if got := p.Hits(peer.UserDevices); got < refusedBefore+1 {
			t.Fatalf("refetches: %d", got-refusedBefore)
		}

		// The peer answers again: the retry fetches the list.
		p.Refuse(peer.UserDevices, 0)
		waitFor("the refetch retried", func() bool { return cached() == 2 })
		if n, _, _, failures := queriedKeys(t, hs1, alice.AccessToken, creator); n != 2 || len(failures) != 0 {
			t.Fatalf("after the retry: %d devices, failures %v", n, failures)
		}
	})
}
