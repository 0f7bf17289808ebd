package federation_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestKeyEDUs: the end-to-end encryption EDUs between two servers whose
// users share a room. A new device of alice's reaches bob's key queries
// on hs2 through m.device_list_update, and a to-device message from
// alice lands in bob's device inbox on hs2 through m.direct_to_device.
func TestKeyEDUs(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2 := net.Servers[0], net.Servers[1]
		alice := hs1.Register("alice", "pw-alice")
		bob := hs2.Register("bob", "pw-bob")
		aliceID := string(alice.UserID)
		uploadE2EKeys(t, hs1, alice.AccessToken, aliceID, string(alice.DeviceID), 1, false)
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bob.JoinRoom(ctx, created.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
			t.Fatal(err)
		}
		devices := func() int {
			st, body := hs2.Do(t, http.MethodPost, "/_matrix/client/v3/keys/query", bob.AccessToken, map[string]any{
				"device_keys": map[string]any{aliceID: []string{}}})
			testserver.WantStatus(t, "keys/query", st, body, http.StatusOK)
			m, _ := body["device_keys"].(map[string]any)[aliceID].(map[string]any)
			return len(m)
		}
		if n := devices(); n != 1 {
			t.Fatalf("alice's devices seen from hs2: %d", n)
		}
		phone := hs1.Client()
		if _, err := phone.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, StoreCredentials: true,
			Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"}, Password: "pw-alice"}); err != nil {
			t.Fatal(err)
		}
		uploadE2EKeys(t, hs1, phone.AccessToken, aliceID, string(phone.DeviceID), 0, false)
		deadline := time.Now().Add(20 * time.Second)
		for devices() != 2 {
			if time.Now().After(deadline) {
				t.Fatal("alice's new device never reached hs2")
			}
			time.Sleep(50 * time.Millisecond)
		}

		st, body := hs1.Do(t, http.MethodPut, "/_matrix/client/v3/sendToDevice/m.room_key_request/txn1", alice.AccessToken, map[string]any{
			"messages": map[string]any{string(bob.UserID): map[string]any{string(bob.DeviceID): map[string]any{"hello": "bob"}}}})
		testserver.WantStatus(t, "sendToDevice", st, body, http.StatusOK)
		deadline = time.Now().Add(20 * time.Second)
		for {
			msgs, _, err := hs2.Keys().ToDeviceMessages(ctx, string(bob.UserID), string(bob.DeviceID), 0, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) == 1 {
				if msgs[0].Sender != aliceID || msgs[0].Type != "m.room_key_request" {
					t.Fatalf("to-device message on hs2: %+v", msgs[0])
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("to-device message never reached hs2: %+v", msgs)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}
