package federation_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/matrix-org/gomatrixserverlib"
	"maunium.net/go/mautrix"

	"github.com/myelin-chat/myelin/internal/signing"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// signedKeys makes an object signed by an ed25519 key under keyID.
func signedKeys(t *testing.T, obj map[string]any, user, keyID string, priv ed25519.PrivateKey) map[string]any {
	t.Helper()
	raw, _ := json.Marshal(obj)
	signed, err := gomatrixserverlib.SignJSON(user, gomatrixserverlib.KeyID(keyID), priv, raw)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	_ = json.Unmarshal(signed, &out)
	return out
}

// uploadE2EKeys gives a user's device signed device keys, n one-time
// keys and, with master, a master and self-signing key.
func uploadE2EKeys(t *testing.T, s *testserver.Server, token, user, device string, n int, master bool) {
	t.Helper()
	b64 := base64.RawStdEncoding.EncodeToString
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	dk := signedKeys(t, map[string]any{"user_id": user, "device_id": device, "algorithms": []string{"m.megolm.v1.aes-sha2"},
		"keys": map[string]any{"ed25519:" + device: b64(pub), "curve25519:" + device: b64(pub)}}, user, "ed25519:"+device, priv)
	otks := map[string]any{}
	for i := 0; i < n; i++ {
		otks[fmt.Sprintf("signed_curve25519:K%d", i)] = signedKeys(t, map[string]any{"key": fmt.Sprint(i)}, user, "ed25519:"+device, priv)
	}
	st, body := s.Do(t, http.MethodPost, "/_matrix/client/v3/keys/upload", token, map[string]any{"device_keys": dk, "one_time_keys": otks})
	testserver.WantStatus(t, "upload", st, body, http.StatusOK)
	if !master {
		return
	}
	mpub, mpriv, _ := ed25519.GenerateKey(rand.Reader)
	spub, _, _ := ed25519.GenerateKey(rand.Reader)
	mk := "ed25519:" + b64(mpub)
	st, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/keys/device_signing/upload", token, map[string]any{
		"master_key": map[string]any{"user_id": user, "usage": []string{"master"}, "keys": map[string]any{mk: b64(mpub)}},
		"self_signing_key": signedKeys(t, map[string]any{"user_id": user, "usage": []string{"self_signing"},
			"keys": map[string]any{"ed25519:" + b64(spub): b64(spub)}}, user, mk, mpriv),
	})
	testserver.WantStatus(t, "cross-signing", st, body, http.StatusOK)
}

func TestUserKeysOverFederation(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2 := net.Servers[0], net.Servers[1]
		alice := hs1.Register("alice", "pw-alice")
		aliceID, dev := string(alice.UserID), string(alice.DeviceID)
		uploadE2EKeys(t, hs1, alice.AccessToken, aliceID, dev, 2, true)

		st, body := net.SignedRequest(t, hs2, hs1, http.MethodGet, "/_matrix/federation/v1/user/devices/"+aliceID, nil)
		testserver.WantStatus(t, "user/devices", st, body, http.StatusOK)
		devices := body["devices"].([]any)
		if len(devices) != 1 || devices[0].(map[string]any)["device_id"] != dev || body["master_key"] == nil || body["self_signing_key"] == nil {
			t.Fatalf("user/devices: %v", body)
		}
		if body["stream_id"].(float64) <= 0 {
			t.Fatalf("stream_id %v", body["stream_id"])
		}
		st, body = net.SignedRequest(t, hs2, hs1, http.MethodGet, "/_matrix/federation/v1/user/devices/@bob:hs2.test", nil)
		testserver.WantStatus(t, "user/devices of another server's user", st, body, http.StatusBadRequest)

		st, body = net.SignedRequest(t, hs2, hs1, http.MethodPost, "/_matrix/federation/v1/user/keys/query",
			map[string]any{"device_keys": map[string]any{aliceID: []string{}}})
		testserver.WantStatus(t, "user/keys/query", st, body, http.StatusOK)
		if body["device_keys"].(map[string]any)[aliceID].(map[string]any)[dev] == nil || body["master_keys"].(map[string]any)[aliceID] == nil {
			t.Fatalf("user/keys/query: %v", body)
		}
		if _, ok := body["user_signing_keys"]; ok {
			t.Fatalf("user-signing keys over federation: %v", body)
		}

		st, body = net.SignedRequest(t, hs2, hs1, http.MethodPost, "/_matrix/federation/v1/user/keys/claim",
			map[string]any{"one_time_keys": map[string]any{aliceID: map[string]string{dev: "signed_curve25519"}}})
		testserver.WantStatus(t, "user/keys/claim", st, body, http.StatusOK)
		if len(body["one_time_keys"].(map[string]any)[aliceID].(map[string]any)[dev].(map[string]any)) != 1 {
			t.Fatalf("user/keys/claim: %v", body)
		}

		// A request signed with a key that is not hs2's is refused.
		forger, _ := signing.Generate()
		st, body = net.RequestSignedWith(t, hs2.Config.ServerName, forger, hs1, http.MethodPost, "/_matrix/federation/v1/user/keys/query",
			map[string]any{"device_keys": map[string]any{aliceID: []string{}}})
		testserver.WantStatus(t, "forged", st, body, http.StatusUnauthorized)

		// hs2's users query and claim through hs2's client API.
		bob := hs2.Register("bob", "pw-bob")
		query := func() map[string]any {
			st, body := hs2.Do(t, http.MethodPost, "/_matrix/client/v3/keys/query", bob.AccessToken, map[string]any{
				"device_keys": map[string]any{aliceID: []string{}}, "timeout": 5000})
			testserver.WantStatus(t, "remote query", st, body, http.StatusOK)
			return body
		}
		body = query()
		if body["device_keys"].(map[string]any)[aliceID].(map[string]any)[dev] == nil || len(body["failures"].(map[string]any)) != 0 {
			t.Fatalf("remote query: %v", body)
		}
		if body["master_keys"].(map[string]any)[aliceID] == nil {
			t.Fatalf("remote master key: %v", body)
		}
		// A second query comes from hs2's cache: alice's new device is
		// not seen until a device-list update marks the list stale.
		phone := hs1.Client()
		if _, err := phone.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, StoreCredentials: true,
			Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"}, Password: "pw-alice"}); err != nil {
			t.Fatal(err)
		}
		uploadE2EKeys(t, hs1, phone.AccessToken, aliceID, string(phone.DeviceID), 0, false)
		if n := len(query()["device_keys"].(map[string]any)[aliceID].(map[string]any)); n != 1 {
			t.Fatalf("cached query: %d devices", n)
		}
		update := json.RawMessage(`{"user_id":"` + aliceID + `","device_id":"` + string(phone.DeviceID) + `","stream_id":9}`)
		if err := hs2.Keys().HandleDeviceListUpdate(ctx, "hs3.test", update); err == nil {
			t.Fatal("device-list update from another server than the user's accepted")
		}
		if err := hs2.Keys().HandleDeviceListUpdate(ctx, hs1.Config.ServerName, update); err != nil {
			t.Fatal(err)
		}
		if n := len(query()["device_keys"].(map[string]any)[aliceID].(map[string]any)); n != 2 {
			t.Fatalf("after the update: %d devices", n)
		}

		st, body = hs2.Do(t, http.MethodPost, "/_matrix/client/v3/keys/claim", bob.AccessToken, map[string]any{
			"one_time_keys": map[string]any{aliceID: map[string]string{dev: "signed_curve25519"}}})
		testserver.WantStatus(t, "remote claim", st, body, http.StatusOK)
		if len(body["one_time_keys"].(map[string]any)[aliceID].(map[string]any)[dev].(map[string]any)) != 1 {
			t.Fatalf("remote claim: %v", body)
		}
		// An unreachable server is a failure, not an error.
		st, body = hs2.Do(t, http.MethodPost, "/_matrix/client/v3/keys/query", bob.AccessToken, map[string]any{
			"device_keys": map[string]any{"@x:unreachable.test": []string{}}, "timeout": 2000})
		testserver.WantStatus(t, "unreachable", st, body, http.StatusOK)
		if body["failures"].(map[string]any)["unreachable.test"] == nil {
			t.Fatalf("no failure for an unreachable server: %v", body)
		}
	})
}
