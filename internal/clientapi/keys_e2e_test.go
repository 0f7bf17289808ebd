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

// uploadDeviceKeys uploads a client's device keys, otks one-time keys
// and a fallback key, and returns the keys, their signing key and the
// answer.
func uploadDeviceKeys(t *testing.T, s *testserver.Server, c *mautrix.Client, otks int) (map[string]any, ed25519.PrivateKey, map[string]any) {
	t.Helper()
	userID, dev := string(c.UserID), string(c.DeviceID)
	dk, priv := deviceKeys(t, userID, dev)
	fallback := sign(t, map[string]any{"key": "fallbackkey", "fallback": true}, userID, "ed25519:"+dev, priv)
	st, body := s.Do(t, http.MethodPost, "/_matrix/client/v3/keys/upload", tok(c), map[string]any{
		"device_keys": dk, "one_time_keys": otk(t, userID, dev, priv, otks),
		"fallback_keys": map[string]any{"signed_curve25519:F1": fallback},
	})
	testserver.WantStatus(t, "upload", st, body, http.StatusOK)
	return dk, priv, body
}

func TestKeysUploadQueryClaim(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw-alice")
		bob := s.Register("bob", "pw-bob")
		aliceID, dev := string(alice.UserID), string(alice.DeviceID)
		dk, priv, body := uploadDeviceKeys(t, s, alice, 3)
		if c := body["one_time_key_counts"].(map[string]any)["signed_curve25519"]; c != float64(3) {
			t.Fatalf("counts %v", body)
		}
		// The same device keys again change nothing; other identity keys
		// for the device replace them (as Synapse stores them; put back
		// below); another user's are refused; a signature the server
		// cannot verify is not (Synapse does not check it either).
		st, body := s.Do(t, http.MethodPost, "/_matrix/client/v3/keys/upload", tok(alice), map[string]any{"device_keys": dk})
		testserver.WantStatus(t, "re-upload", st, body, http.StatusOK)
		other, _ := deviceKeys(t, aliceID, dev)
		st, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/keys/upload", tok(alice), map[string]any{"device_keys": other})
		testserver.WantStatus(t, "new identity keys", st, body, http.StatusOK)
		st, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/keys/upload", tok(alice), map[string]any{"device_keys": dk})
		testserver.WantStatus(t, "the first keys again", st, body, http.StatusOK)
		forged, _ := deviceKeys(t, string(bob.UserID), dev)
		st, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/keys/upload", tok(alice), map[string]any{"device_keys": forged})
		testserver.WantError(t, "other user", st, body, http.StatusBadRequest, "M_INVALID_PARAM")
		raw, _ := json.Marshal(dk)
		var bad map[string]any
		_ = json.Unmarshal(raw, &bad)
		bad["signatures"] = map[string]any{aliceID: map[string]any{"ed25519:" + dev: "bm90IGEgc2lnbmF0dXJl"}}
		st, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/keys/upload", tok(alice), map[string]any{"device_keys": bad})
		testserver.WantStatus(t, "unverifiable signature", st, body, http.StatusOK)
		st, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/keys/upload", tok(alice), map[string]any{"device_keys": map[string]any{"user_id": aliceID}})
		testserver.WantError(t, "device keys without the required fields", st, body, http.StatusBadRequest, "M_BAD_JSON")
		st, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/keys/upload", tok(alice), map[string]any{"device_keys": dk})
		testserver.WantStatus(t, "the signed keys again", st, body, http.StatusOK)
		st, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/keys/upload", tok(alice), map[string]any{
			"one_time_keys": map[string]any{"signed_curve25519:K000": map[string]any{"key": "different"}}})
		testserver.WantError(t, "duplicate one-time key", st, body, http.StatusBadRequest, "M_INVALID_PARAM")
		// Malformed keys are M_BAD_JSON, as Synapse answers.
		for what, upload := range map[string]any{
			"key name without an algorithm": map[string]any{"one_time_keys": map[string]any{"K001": "k"}},
			"key object without a key":      map[string]any{"one_time_keys": map[string]any{"signed_curve25519:K001": map[string]any{"signatures": map[string]any{}}}},
			"fallback key name":             map[string]any{"fallback_keys": map[string]any{":K001": "k"}},
			"device_keys without fields":    map[string]any{"device_keys": map[string]any{"keys": map[string]any{}}},
		} {
			st, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/keys/upload", tok(alice), upload)
			testserver.WantError(t, what, st, body, http.StatusBadRequest, "M_BAD_JSON")
		}

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

func TestKeyBackup(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw-alice")
		do := func(method, path string, body any) (int, map[string]any) {
			return s.Do(t, method, "/_matrix/client/v3/room_keys"+path, tok(alice), body)
		}
		st, body := do(http.MethodGet, "/version", nil)
		testserver.WantError(t, "no backup", st, body, http.StatusNotFound, "M_NOT_FOUND")
		const alg = "m.megolm_backup.v1.curve25519-aes-sha2"
		st, body = do(http.MethodPost, "/version", map[string]any{"algorithm": alg, "auth_data": map[string]any{"public_key": "abc"}})
		testserver.WantStatus(t, "create", st, body, http.StatusOK)
		if body["version"] != "1" {
			t.Fatalf("version %v", body)
		}
		session := func(fmi, fc int, verified bool, data string) map[string]any {
			return map[string]any{"first_message_index": fmi, "forwarded_count": fc, "is_verified": verified,
				"session_data": map[string]any{"ciphertext": data}}
		}
		st, body = do(http.MethodPut, "/keys?version=1", map[string]any{"rooms": map[string]any{
			"!r:hs1.test": map[string]any{"sessions": map[string]any{"s1": session(5, 1, false, "a"), "s2": session(0, 0, true, "b")}}}})
		testserver.WantStatus(t, "put all", st, body, http.StatusOK)
		if body["count"] != float64(2) {
			t.Fatalf("put: %v", body)
		}
		etag := body["etag"]
		// The replace rules: unverified never replaces verified; a lower
		// first_message_index wins; then a lower forwarded_count.
		for _, c := range []struct {
			path string
			body map[string]any
			want string
		}{
			{"/keys/!r:hs1.test/s2", session(0, 0, false, "unverified"), "b"},
			{"/keys/!r:hs1.test/s1", session(6, 0, false, "later index"), "a"},
			{"/keys/!r:hs1.test/s1", session(5, 2, false, "more forwarded"), "a"},
			{"/keys/!r:hs1.test/s1", session(5, 0, false, "fewer forwarded"), "fewer forwarded"},
			{"/keys/!r:hs1.test/s1", session(9, 9, true, "verified"), "verified"},
		} {
			st, body = do(http.MethodPut, c.path+"?version=1", c.body)
			testserver.WantStatus(t, "put "+c.want, st, body, http.StatusOK)
			st, body = do(http.MethodGet, c.path+"?version=1", nil)
			testserver.WantStatus(t, "get "+c.want, st, body, http.StatusOK)
			if got := body["session_data"].(map[string]any)["ciphertext"]; got != c.want {
				t.Fatalf("%s: kept %v, want %s", c.path, got, c.want)
			}
		}
		st, body = do(http.MethodGet, "/version", nil)
		if body["count"] != float64(2) || body["etag"] == etag || body["algorithm"] != alg {
			t.Fatalf("version after writes: %v (etag before %v)", body, etag)
		}
		st, body = do(http.MethodGet, "/keys/!r:hs1.test?version=1", nil)
		if len(body["sessions"].(map[string]any)) != 2 {
			t.Fatalf("room: %v", body)
		}
		st, body = do(http.MethodGet, "/keys/!other:hs1.test?version=1", nil)
		testserver.WantStatus(t, "empty room", st, body, http.StatusOK)

		// A new version makes the old one wrong to write to.
		do(http.MethodPost, "/version", map[string]any{"algorithm": alg, "auth_data": map[string]any{"public_key": "def"}})
		st, body = do(http.MethodPut, "/keys/!r:hs1.test/s3?version=1", session(0, 0, false, "x"))
		testserver.WantError(t, "old version", st, body, http.StatusForbidden, "M_WRONG_ROOM_KEYS_VERSION")
		if body["current_version"] != "2" {
			t.Fatalf("current_version: %v", body)
		}
		st, body = do(http.MethodPut, "/version/2", map[string]any{"algorithm": "other", "auth_data": map[string]any{}})
		testserver.WantError(t, "change algorithm", st, body, http.StatusBadRequest, "M_INVALID_PARAM")
		st, body = do(http.MethodPut, "/version/2", map[string]any{"algorithm": alg, "auth_data": map[string]any{"public_key": "ghi"}})
		testserver.WantStatus(t, "update", st, body, http.StatusOK)
		st, body = do(http.MethodDelete, "/keys/!r:hs1.test/s1?version=1", nil)
		if st != http.StatusOK || body["count"] != float64(1) {
			t.Fatalf("delete session: %d %v", st, body)
		}
		st, body = do(http.MethodDelete, "/version/2", nil)
		testserver.WantStatus(t, "delete version", st, body, http.StatusOK)
		st, body = do(http.MethodGet, "/version", nil)
		if body["version"] != "1" {
			t.Fatalf("after deleting 2, current %v", body)
		}
		st, body = do(http.MethodGet, "/version/2", nil)
		testserver.WantError(t, "deleted version", st, body, http.StatusNotFound, "M_NOT_FOUND")
	})
}

func TestToDevice(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw-alice")
		phone := devLogin(t, s, "alice", "pw-alice", "phone")
		bob := s.Register("bob", "pw-bob")
		aliceID := string(alice.UserID)
		send := func(txn string, devices map[string]any) {
			st, body := s.Do(t, http.MethodPut, "/_matrix/client/v3/sendToDevice/m.test/"+txn, tok(bob), map[string]any{
				"messages": map[string]any{aliceID: devices}})
			testserver.WantStatus(t, "send "+txn, st, body, http.StatusOK)
		}
		send("t1", map[string]any{string(alice.DeviceID): map[string]any{"n": 1}})
		send("t1", map[string]any{string(alice.DeviceID): map[string]any{"n": 1}}) // repeated transaction: no second copy
		send("t2", map[string]any{"*": map[string]any{"n": 2}})
		ks := s.Keys()
		msgs, next, err := ks.ToDeviceMessages(ctx, aliceID, string(alice.DeviceID), 0, 100)
		if err != nil || len(msgs) != 2 || msgs[0].Sender != string(bob.UserID) || msgs[0].Type != "m.test" || string(msgs[1].Content) != `{"n":2}` {
			t.Fatalf("first device: %v %+v", err, msgs)
		}
		phoneMsgs, _, _ := ks.ToDeviceMessages(ctx, aliceID, string(phone.DeviceID), 0, 100)
		if len(phoneMsgs) != 1 {
			t.Fatalf("phone: %+v", phoneMsgs)
		}
		// Paging: limit 1 then from the position returned.
		first, pos, _ := ks.ToDeviceMessages(ctx, aliceID, string(alice.DeviceID), 0, 1)
		rest, _, _ := ks.ToDeviceMessages(ctx, aliceID, string(alice.DeviceID), pos, 100)
		if len(first) != 1 || len(rest) != 1 || rest[0].Pos != next {
			t.Fatalf("paging: %+v %+v", first, rest)
		}
		// Acknowledging deletes up to the position, for that device only.
		if err := ks.Ack(ctx, aliceID, string(alice.DeviceID), pos); err != nil {
			t.Fatal(err)
		}
		left, _, _ := ks.ToDeviceMessages(ctx, aliceID, string(alice.DeviceID), 0, 100)
		phoneMsgs, _, _ = ks.ToDeviceMessages(ctx, aliceID, string(phone.DeviceID), 0, 100)
		if len(left) != 1 || len(phoneMsgs) != 1 {
			t.Fatalf("after ack: %+v, phone %+v", left, phoneMsgs)
		}

		// From another server, deduplicated by message_id; a sender of
		// another server than the origin is refused.
		edu := json.RawMessage(`{"sender":"@carol:hs2.test","type":"m.room_key_request","message_id":"m1",
			"messages":{"` + aliceID + `":{"*":{"k":1}}}}`)
		for i := 0; i < 2; i++ {
			if err := ks.HandleDirectToDevice(ctx, "hs2.test", edu); err != nil {
				t.Fatal(err)
			}
		}
		if err := ks.HandleDirectToDevice(ctx, "evil.test", edu); err == nil {
			t.Fatal("forged sender accepted")
		}
		phoneMsgs, _, _ = ks.ToDeviceMessages(ctx, aliceID, string(phone.DeviceID), 0, 100)
		if len(phoneMsgs) != 2 || phoneMsgs[1].Sender != "@carol:hs2.test" {
			t.Fatalf("phone after EDU: %+v", phoneMsgs)
		}
		// Deleting the device drops its inbox.
		if _, err := phone.Logout(ctx); err != nil {
			t.Fatal(err)
		}
		phoneMsgs, _, _ = ks.ToDeviceMessages(ctx, aliceID, string(phone.DeviceID), 0, 100)
		if len(phoneMsgs) != 0 {
			t.Fatalf("inbox of a deleted device: %+v", phoneMsgs)
		}
	})
}

func TestKeyChanges(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw-alice")
		bob := s.Register("bob", "pw-bob")
		carol := s.Register("carol", "pw-carol")
		aliceID, bobID := string(alice.UserID), string(bob.UserID)
		room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bob.JoinRoomByID(ctx, room.RoomID); err != nil {
			t.Fatal(err)
		}
		token := func() string { return fmt.Sprintf("s%d", s.Engine().Stream().Current()) }
		changes := func(c *mautrix.Client, from, to string) ([]any, []any) {
			st, body := s.Do(t, http.MethodGet, "/_matrix/client/v3/keys/changes?from="+from+"&to="+to, tok(c), nil)
			testserver.WantStatus(t, "changes", st, body, http.StatusOK)
			return body["changed"].([]any), body["left"].([]any)
		}
		from := token()
		dk, _ := deviceKeys(t, aliceID, string(alice.DeviceID))
		s.Do(t, http.MethodPost, "/_matrix/client/v3/keys/upload", tok(alice), map[string]any{"device_keys": dk})
		mid := token()
		if changed, _ := changes(bob, from, mid); len(changed) != 1 || changed[0] != aliceID {
			t.Fatalf("Bob sees changed %v", changed)
		}
		if changed, _ := changes(carol, from, mid); len(changed) != 0 {
			t.Fatalf("Carol, in no room with Alice, sees %v", changed)
		}
		// The token is an ordinary sync token: the change is past it.
		if changed, _ := changes(bob, mid, mid); len(changed) != 0 {
			t.Fatalf("empty range: %v", changed)
		}
		if _, err := bob.LeaveRoom(ctx, room.RoomID); err != nil {
			t.Fatal(err)
		}
		if _, left := changes(alice, mid, token()); len(left) != 1 || left[0] != bobID {
			t.Fatalf("Alice sees left %v", left)
		}
		// Remote users' lists marked changed take a position too.
		before := s.Engine().Stream().Current()
		if err := s.Keys().MarkRemoteDeviceListStale(ctx, "@dave:hs2.test"); err != nil {
			t.Fatal(err)
		}
		last := s.Engine().Stream().Current()
		if last <= before {
			t.Fatalf("stream at %d after a change, was %d", last, before)
		}
		// The event stream resumes above device-list positions after a
		// restart, so no position a client holds is handed out again.
		s.Restart()
		if cur := s.Engine().Stream().Current(); cur < last {
			t.Fatalf("after restart the stream is at %d, below %d", cur, last)
		}
	})
}

// TestKeysUploadCountsAfterSync: the one_time_key_counts /keys/upload
// answers include the keys just uploaded even when a /sync read (and
// cached) the counts before, as Element X's crypto reads that answer.
func TestKeysUploadCountsAfterSync(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw")
		resp, err := alice.SyncRequest(ctx, 0, "", "", false, "")
		if err != nil || resp.DeviceOTKCount.SignedCurve25519 != 0 {
			t.Fatalf("first sync: %+v, %v", resp.DeviceOTKCount, err)
		}
		for round, want := range []int{2, 5} {
			keys := map[string]any{}
			for i := range want - round*2 { // 2 keys, then 3 more
				keys[fmt.Sprintf("signed_curve25519:R%dK%d", round, i)] = map[string]any{"key": fmt.Sprintf("key-%d-%d", round, i)}
			}
			st, body := s.Do(t, http.MethodPost, "/_matrix/client/v3/keys/upload", tok(alice), map[string]any{"one_time_keys": keys})
			testserver.WantStatus(t, "upload", st, body, http.StatusOK)
			if c := body["one_time_key_counts"].(map[string]any)["signed_curve25519"]; c != float64(want) {
				t.Fatalf("round %d: the upload answered %v, want %d", round, c, want)
			}
			if resp, err = alice.SyncRequest(ctx, 0, resp.NextBatch, "", false, ""); err != nil || resp.DeviceOTKCount.SignedCurve25519 != want {
				t.Fatalf("round %d: sync after the upload: %+v, %v", round, resp.DeviceOTKCount, err)
			}
		}
	})
}
