package federation_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/myelin-chat/myelin/internal/signing"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestServerKeys fetches /_matrix/key/v2/server and checks it the way a
// remote server does: the key is the one in the key file, the answer is
// signed by it, and it says how long it may be cached.
func TestServerKeys(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		raw, err := os.ReadFile(s.Config.SigningKeyPath())
		if err != nil {
			t.Fatal(err)
		}
		key, err := signing.Parse(string(raw))
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{"/_matrix/key/v2/server", "/_matrix/key/v2/server/" + key.ID} {
			resp, err := http.Get(s.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
			}
			var keys struct {
				ServerName   string `json:"server_name"`
				ValidUntilTS int64  `json:"valid_until_ts"`
				VerifyKeys   map[string]struct {
					Key string `json:"key"`
				} `json:"verify_keys"`
			}
			if err := json.Unmarshal(body, &keys); err != nil {
				t.Fatal(err)
			}
			if keys.ServerName != s.Config.ServerName {
				t.Fatalf("server_name %q", keys.ServerName)
			}
			if until := time.UnixMilli(keys.ValidUntilTS); until.Before(time.Now().Add(time.Hour)) {
				t.Fatalf("valid_until_ts %v is too soon", until)
			}
			pub, err := base64.RawStdEncoding.DecodeString(keys.VerifyKeys[key.ID].Key)
			if err != nil || !ed25519.PublicKey(pub).Equal(key.Public()) {
				t.Fatalf("verify key for %s is not the key file's: %v", key.ID, err)
			}
			if err := gomatrixserverlib.VerifyJSON(s.Config.ServerName, gomatrixserverlib.KeyID(key.ID), pub, body); err != nil {
				t.Fatalf("signature does not verify: %v", err)
			}
			// A tampered answer must not verify: the check above is real.
			var m map[string]any
			_ = json.Unmarshal(body, &m)
			m["server_name"] = "evil.example"
			tampered, _ := json.Marshal(m)
			if err := gomatrixserverlib.VerifyJSON(s.Config.ServerName, gomatrixserverlib.KeyID(key.ID), pub, tampered); err == nil {
				t.Fatal("a tampered key answer verified")
			}
		}
	})
}
