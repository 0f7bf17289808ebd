package federation_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/myelin-chat/myelin/internal/signing"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestKeyRotation: after hs1 retires its signing key, /key/v2/server
// lists the old key in old_verify_keys, and a server that never saw it
// (hs3) still accepts the room history hs1 signed with it when joining.
func TestKeyRotation(t *testing.T) {
	testserver.EachEngineNetwork(t, 3, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs3 := net.Servers[0], net.Servers[2]
		alice := hs1.Register("alice", "password1234")
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Before rotation"})
		if err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(hs1.Config.SigningKeyPath())
		if err != nil {
			t.Fatal(err)
		}
		first, err := signing.Parse(string(raw))
		if err != nil {
			t.Fatal(err)
		}

		hs1.Stop()
		if _, _, err := signing.Rotate(hs1.Config.SigningKeyPath(), hs1.Config.OldSigningKeysPath(), time.Now().UnixMilli()); err != nil {
			t.Fatal(err)
		}
		hs1.Restart()
		hs1.Repoint(alice)

		status, doc := net.SignedRequest(t, hs3, hs1, http.MethodGet, "/_matrix/key/v2/server", nil)
		if status != http.StatusOK {
			t.Fatalf("key/v2/server: %d %v", status, doc)
		}
		body, _ := json.Marshal(doc)
		var keys struct {
			VerifyKeys    map[string]json.RawMessage `json:"verify_keys"`
			OldVerifyKeys map[string]struct {
				Key       string `json:"key"`
				ExpiredTS int64  `json:"expired_ts"`
			} `json:"old_verify_keys"`
		}
		if err := json.Unmarshal(body, &keys); err != nil {
			t.Fatal(err)
		}
		old, ok := keys.OldVerifyKeys[first.ID]
		if !ok || old.ExpiredTS == 0 {
			t.Fatalf("old_verify_keys after rotation: %s", body)
		}
		if _, still := keys.VerifyKeys[first.ID]; still {
			t.Fatalf("the retired key is still a verify key: %s", body)
		}

		carol := hs3.Register("carol", "password1234")
		if _, err := carol.JoinRoom(ctx, created.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
			t.Fatalf("joining history signed with the retired key: %v", err)
		}
		wantJoined(t, alice, created.RoomID, "@alice:hs1.test", "@carol:hs3.test")
	})
}
