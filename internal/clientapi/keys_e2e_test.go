package clientapi_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/matrix-org/gomatrixserverlib"
	"maunium.net/go/mautrix"

	"github.com/myelin-chat/myelin/internal/testserver"
)

func b64(b []byte) string { return base64.RawStdEncoding.EncodeToString(b) }

// sign adds signer's signature with keyID to obj, as a client does.
func sign(t *testing.T, obj map[string]any, signer, keyID string, priv ed25519.PrivateKey) map[string]any {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := gomatrixserverlib.SignJSON(signer, gomatrixserverlib.KeyID(keyID), priv, raw)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(signed, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func newKey(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// deviceKeys makes a device's signed device_keys and returns its key.
func deviceKeys(t *testing.T, user, device string) (map[string]any, ed25519.PrivateKey) {
	t.Helper()
	pub, priv := newKey(t)
	curve, _ := newKey(t)
	obj := map[string]any{
		"user_id": user, "device_id": device,
		"algorithms": []string{"m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"},
		"keys":       map[string]any{"ed25519:" + device: b64(pub), "curve25519:" + device: b64(curve)},
	}
	return sign(t, obj, user, "ed25519:"+device, priv), priv
}

func otk(t *testing.T, user, device string, priv ed25519.PrivateKey, n int) map[string]any {
	out := map[string]any{}
	for i := 0; i < n; i++ {
		k, _ := newKey(t)
		out[fmt.Sprintf("signed_curve25519:K%03d", i)] = sign(t, map[string]any{"key": b64(k)}, user, "ed25519:"+device, priv)
	}
	return out
}

func tok(c *mautrix.Client) string { return c.AccessToken }

func TestKeysUploadQueryClaim(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw-alice")
		bob := s.Register("bob", "pw-bob")
		aliceID, dev := string(alice.UserID), string(alice.DeviceID)
		dk, priv := deviceKeys(t, aliceID, dev)
		fallback := sign(t, map[string]any{"key": "fallbackkey", "fallback": true}, aliceID, "ed25519:"+dev, priv)
		st, body := s.Do(t, http.MethodPost, "/_matrix/client/v3/keys/upload", tok(alice), map[string]any{
			"device_keys": dk, "one_time_keys": otk(t, aliceID, dev, priv, 3),
			"fallback_keys": map[string]any{"signed_curve25519:F1": fallback},
		})
		testserver.WantStatus(t, "upload", st, body, http.StatusOK)
		if c := body["one_time_key_counts"].(map[string]any)["signed_curve25519"]; c != float64(3) {
			t.Fatalf("counts %v", body)
		}
		// The same device keys again change nothing; other identity keys
		// for the device, another user's or a bad signature are refused.
		st, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/keys/upload", tok(alice), map[string]any{"device_keys": dk})
		testserver.WantStatus(t, "re-upload", st, body, http.StatusOK)
		other, _ := deviceKeys(t, aliceID, dev)
		st, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/keys/upload", tok(alice), map[string]any{"device_keys": other})
		testserver.WantError(t, "new identity keys", st, body, http.StatusBadRequest, "M_INVALID_PARAM")
		forged, _ := deviceKeys(t, string(bob.UserID), dev)
		st, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/keys/upload", tok(alice), map[string]any{"device_keys": forged})
		testserver.WantError(t, "other user", st, body, http.StatusBadRequest, "M_INVALID_PARAM")
		bad, _ := deviceKeys(t, aliceID, dev)
		bad["keys"].(map[string]any)["ed25519:"+dev] = dk["keys"].(map[string]any)["ed25519:"+dev]
		st, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/keys/upload", tok(alice), map[string]any{"device_keys": bad})
		testserver.WantError(t, "bad signature", st, body, http.StatusBadRequest, "M_INVALID_SIGNATURE")
		st, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/keys/upload", tok(alice), map[string]any{
			"one_time_keys": map[string]any{"signed_curve25519:K000": map[string]any{"key": "different"}}})
		testserver.WantError(t, "duplicate one-time key", st, body, http.StatusBadRequest, "M_INVALID_PARAM")

		s.Do(t, http.MethodPut, "/_matrix/client/v3/devices/"+dev, tok(alice), map[string]any{"display_name": "phone"})
		st, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/keys/query", tok(bob), map[string]any{
			"device_keys": map[string]any{aliceID: []string{}}})
		testserver.WantStatus(t, "query", st, body, http.StatusOK)
		got := body["device_keys"].(map[string]any)[aliceID].(map[string]any)[dev].(map[string]any)
		if got["keys"].(map[string]any)["ed25519:"+dev] != dk["keys"].(map[string]any)["ed25519:"+dev] {
			t.Fatalf("queried keys %v", got)
		}
		if unsigned, _ := got["unsigned"].(map[string]any); unsigned["device_display_name"] != "phone" {
			t.Fatalf("no display name: %v", got)
		}

		// Three one-time keys, each handed out once, then the fallback
		// key, which stays available and is marked used.
		seen := map[string]bool{}
		for i := 0; i < 5; i++ {
			st, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/keys/claim", tok(bob), map[string]any{
				"one_time_keys": map[string]any{aliceID: map[string]string{dev: "signed_curve25519"}}})
			testserver.WantStatus(t, "claim", st, body, http.StatusOK)
			keys := body["one_time_keys"].(map[string]any)[aliceID].(map[string]any)[dev].(map[string]any)
			for id := range keys {
				if i < 3 && (seen[id] || id == "signed_curve25519:F1") {
					t.Fatalf("claim %d: %s again or too early", i, id)
				}
				if i >= 3 && id != "signed_curve25519:F1" {
					t.Fatalf("claim %d: %s, want the fallback key", i, id)
				}
				seen[id] = true
			}
		}
		ctx := context.Background()
		counts, _ := s.Keys().OneTimeKeyCounts(ctx, aliceID, dev)
		unused, _ := s.Keys().UnusedFallbackKeyTypes(ctx, aliceID, dev)
		if counts["signed_curve25519"] != 0 || len(unused) != 0 {
			t.Fatalf("after claims: counts %v, unused fallback %v", counts, unused)
		}
		// A new fallback key is unused again.
		fb2 := sign(t, map[string]any{"key": "fallback2", "fallback": true}, aliceID, "ed25519:"+dev, priv)
		s.Do(t, http.MethodPost, "/_matrix/client/v3/keys/upload", tok(alice), map[string]any{"fallback_keys": map[string]any{"signed_curve25519:F2": fb2}})
		if unused, _ = s.Keys().UnusedFallbackKeyTypes(ctx, aliceID, dev); len(unused) != 1 {
			t.Fatalf("unused fallback %v", unused)
		}

		// Logging the device out removes its keys.
		if _, err := alice.Logout(ctx); err != nil {
			t.Fatal(err)
		}
		_, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/keys/query", tok(bob), map[string]any{"device_keys": map[string]any{aliceID: []string{}}})
		if n := len(body["device_keys"].(map[string]any)[aliceID].(map[string]any)); n != 0 {
			t.Fatalf("%d devices after logout: %v", n, body)
		}
	})
}

func TestKeysConcurrentClaims(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw-alice")
		bob := s.Register("bob", "pw-bob")
		aliceID, dev := string(alice.UserID), string(alice.DeviceID)
		dk, priv := deviceKeys(t, aliceID, dev)
		const keys, claims = 20, 30
		st, body := s.Do(t, http.MethodPost, "/_matrix/client/v3/keys/upload", tok(alice), map[string]any{
			"device_keys": dk, "one_time_keys": otk(t, aliceID, dev, priv, keys)})
		testserver.WantStatus(t, "upload", st, body, http.StatusOK)
		var mu sync.Mutex
		got := map[string]int{}
		var wg sync.WaitGroup
		for i := 0; i < claims; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := testserver.Send(t, nil, http.MethodPost, s.URL+"/_matrix/client/v3/keys/claim", tok(bob), map[string]any{
					"one_time_keys": map[string]any{aliceID: map[string]string{dev: "signed_curve25519"}}})
				if r.Status != http.StatusOK {
					t.Errorf("claim: %d %s", r.Status, r.Raw)
					return
				}
				users, _ := r.JSON["one_time_keys"].(map[string]any)
				devices, _ := users[aliceID].(map[string]any)
				ks, _ := devices[dev].(map[string]any)
				mu.Lock()
				defer mu.Unlock()
				for id := range ks {
					got[id]++
				}
			}()
		}
		wg.Wait()
		if len(got) != keys {
			t.Fatalf("%d distinct keys handed out, want %d", len(got), keys)
		}
		for id, n := range got {
			if n != 1 {
				t.Fatalf("%s handed out %d times", id, n)
			}
		}
	})
}

// crossSigning makes a user's master, self-signing and user-signing keys,
// the latter two signed by the master key.
type crossSigning struct {
	masterPub, selfPub, userPub    ed25519.PublicKey
	masterPriv, selfPriv, userPriv ed25519.PrivateKey
	upload                         map[string]any
}

func newCrossSigning(t *testing.T, user string) crossSigning {
	var c crossSigning
	c.masterPub, c.masterPriv = newKey(t)
	c.selfPub, c.selfPriv = newKey(t)
	c.userPub, c.userPriv = newKey(t)
	key := func(usage string, pub ed25519.PublicKey) map[string]any {
		return map[string]any{"user_id": user, "usage": []string{usage}, "keys": map[string]any{"ed25519:" + b64(pub): b64(pub)}}
	}
	mk := "ed25519:" + b64(c.masterPub)
	c.upload = map[string]any{
		"master_key":       key("master", c.masterPub),
		"self_signing_key": sign(t, key("self_signing", c.selfPub), user, mk, c.masterPriv),
		"user_signing_key": sign(t, key("user_signing", c.userPub), user, mk, c.masterPriv),
	}
	return c
}

func TestCrossSigningAndSignatures(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw-alice")
		bob := s.Register("bob", "pw-bob")
		aliceID, bobID, dev := string(alice.UserID), string(bob.UserID), string(alice.DeviceID)
		dk, _ := deviceKeys(t, aliceID, dev)
		s.Do(t, http.MethodPost, "/_matrix/client/v3/keys/upload", tok(alice), map[string]any{"device_keys": dk})
		const path = "/_matrix/client/v3/keys/device_signing/upload"

		// The first upload and a repeat go without UIA.
		cs := newCrossSigning(t, aliceID)
		st, body := s.Do(t, http.MethodPost, path, tok(alice), cs.upload)
		testserver.WantStatus(t, "first upload", st, body, http.StatusOK)
		st, body = s.Do(t, http.MethodPost, path, tok(alice), cs.upload)
		testserver.WantStatus(t, "repeat", st, body, http.StatusOK)

		// A self-signing key not signed by the master key is refused.
		bad := newCrossSigning(t, aliceID)
		st, body = s.Do(t, http.MethodPost, path, tok(alice), map[string]any{"self_signing_key": bad.upload["self_signing_key"]})
		testserver.WantError(t, "unsigned self-signing key", st, body, http.StatusBadRequest, "M_INVALID_SIGNATURE")

		// Replacing the keys needs UIA.
		cs2 := newCrossSigning(t, aliceID)
		session := devChallenge(t, "replace", testserver.Send(t, nil, http.MethodPost, s.URL+path, tok(alice), cs2.upload))
		withAuth := map[string]any{"auth": devPasswordAuth("alice", "pw-alice", session)}
		for k, v := range cs2.upload {
			withAuth[k] = v
		}
		st, body = s.Do(t, http.MethodPost, path, tok(alice), withAuth)
		testserver.WantStatus(t, "replace with auth", st, body, http.StatusOK)
		cs = cs2

		// Alice signs her device with her self-signing key.
		ssk := "ed25519:" + b64(cs.selfPub)
		signedDev := sign(t, dk, aliceID, ssk, cs.selfPriv)
		delete(signedDev["signatures"].(map[string]any)[aliceID].(map[string]any), "ed25519:"+dev)
		forged := sign(t, dk, aliceID, ssk, bad.selfPriv)
		st, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/keys/signatures/upload", tok(alice), map[string]any{
			aliceID: map[string]any{dev: signedDev}})
		testserver.WantStatus(t, "sign device", st, body, http.StatusOK)
		if f := body["failures"].(map[string]any); len(f) != 0 {
			t.Fatalf("failures %v", f)
		}
		st, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/keys/signatures/upload", tok(alice), map[string]any{
			aliceID: map[string]any{dev: forged, "NOSUCHDEVICE": forged}})
		testserver.WantStatus(t, "forged", st, body, http.StatusOK)
		fails := body["failures"].(map[string]any)[aliceID].(map[string]any)
		if fails[dev].(map[string]any)["errcode"] != "M_INVALID_SIGNATURE" || fails["NOSUCHDEVICE"].(map[string]any)["errcode"] != "M_NOT_FOUND" {
			t.Fatalf("failures %v", fails)
		}

		// Bob signs Alice's master key with his user-signing key.
		bobCS := newCrossSigning(t, bobID)
		s.Do(t, http.MethodPost, path, tok(bob), bobCS.upload)
		aliceMaster := cs.upload["master_key"].(map[string]any)
		usk := "ed25519:" + b64(bobCS.userPub)
		st, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/keys/signatures/upload", tok(bob), map[string]any{
			aliceID: map[string]any{b64(cs.masterPub): sign(t, aliceMaster, bobID, usk, bobCS.userPriv)}})
		testserver.WantStatus(t, "sign master", st, body, http.StatusOK)
		if f := body["failures"].(map[string]any); len(f) != 0 {
			t.Fatalf("failures %v", f)
		}

		query := func(c *mautrix.Client) map[string]any {
			st, body := s.Do(t, http.MethodPost, "/_matrix/client/v3/keys/query", tok(c), map[string]any{"device_keys": map[string]any{aliceID: []string{}}})
			testserver.WantStatus(t, "query", st, body, http.StatusOK)
			return body
		}
		asBob, asAlice := query(bob), query(alice)
		sigs := asBob["device_keys"].(map[string]any)[aliceID].(map[string]any)[dev].(map[string]any)["signatures"].(map[string]any)[aliceID].(map[string]any)
		if sigs[ssk] == nil || sigs["ed25519:"+dev] == nil {
			t.Fatalf("device signatures %v", sigs)
		}
		if _, ok := asBob["master_keys"].(map[string]any)[aliceID].(map[string]any)["signatures"].(map[string]any)[bobID]; !ok {
			t.Fatalf("Bob does not see his signature of Alice's master key: %v", asBob["master_keys"])
		}
		if sigs, _ := asAlice["master_keys"].(map[string]any)[aliceID].(map[string]any)["signatures"].(map[string]any); sigs[bobID] != nil {
			t.Fatalf("Alice sees Bob's user-signing signature: %v", asAlice["master_keys"])
		}
		if usks, _ := asBob["user_signing_keys"].(map[string]any); usks[aliceID] != nil {
			t.Fatal("Bob sees Alice's user-signing key")
		}
		if usks, _ := asAlice["user_signing_keys"].(map[string]any); usks[aliceID] == nil {
			t.Fatal("Alice does not see her user-signing key")
		}
		if ssks, _ := asBob["self_signing_keys"].(map[string]any); ssks[aliceID] == nil {
			t.Fatal("no self-signing key")
		}
	})
}
