//go:build goolm

package federation_test

import (
	"testing"

	"github.com/myelin-chat/myelin/internal/testserver"
	"github.com/myelin-chat/myelin/internal/testserver/cryptoclient"
)

// TestE2EEMegolmOverFederation: alice on hs1 and bob on hs2, both real
// Olm clients, in an encrypted room. Alice's machine learns bob's
// devices through a key query hs1 forwards to hs2, claims his one-time
// key over federation and sends the room key as an Olm to-device
// message, which reaches bob as an m.direct_to_device EDU; bob decrypts
// the Megolm message that came as a PDU. Then the other way round.
func TestE2EEMegolmOverFederation(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, nil, func(t *testing.T, net *testserver.Network) {
		hs1, hs2 := net.Servers[0], net.Servers[1]
		alice := cryptoclient.New(t, hs1.Register("alice", "pw-alice"))
		bob := cryptoclient.New(t, hs2.Register("bob", "pw-bob"))
		roomID := alice.EncryptedRoom(bob, "hs1.test")

		sent := alice.SendText(roomID, "hello bob, across servers")
		got := bob.Decrypt(sent)
		if body := got.Content.AsMessage().Body; body != "hello bob, across servers" || got.Sender != alice.UserID {
			t.Fatalf("bob decrypted %q from %s", body, got.Sender)
		}
		reply := bob.SendText(roomID, "hello alice, from hs2")
		if body := alice.Decrypt(reply).Content.AsMessage().Body; body != "hello alice, from hs2" {
			t.Fatalf("alice decrypted %q", body)
		}
	})
}

// TestE2EEDeviceListOverFederation: bob@hs2 shares an encrypted room with
// alice@hs1, who logs in on a laptop whose machine uploads its keys. hs1
// tells hs2 (m.device_list_update), bob's incremental /sync lists alice
// in device_lists.changed, his machine's key query reaches the laptop
// through hs2 and hs1, and his next message's room key reaches the
// laptop, which decrypts it; and bob decrypts what the laptop sends.
func TestE2EEDeviceListOverFederation(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, nil, func(t *testing.T, net *testserver.Network) {
		hs1, hs2 := net.Servers[0], net.Servers[1]
		alice := cryptoclient.New(t, hs1.Register("alice", "pw-alice"))
		bob := cryptoclient.New(t, hs2.Register("bob", "pw-bob"))
		roomID := alice.EncryptedRoom(bob, "hs1.test")
		alice.Decrypt(bob.SendText(roomID, "before the laptop"))
		if n := bob.Devices(alice.UserID); n != 1 {
			t.Fatalf("bob knows %d devices of alice, want 1", n)
		}

		bob.ForgetDeviceListChanges()
		laptop := cryptoclient.New(t, hs1.Login("alice", "pw-alice"))
		bob.SyncUntil("alice's new device", func() bool {
			return bob.SawDeviceListChange(alice.UserID) && bob.Devices(alice.UserID) == 2
		})
		laptop.SyncUntil("the room", func() bool { return laptop.Joined(roomID, bob.UserID) })
		sent := bob.SendText(roomID, "hello laptop")
		if body := laptop.Decrypt(sent).Content.AsMessage().Body; body != "hello laptop" {
			t.Fatalf("the laptop decrypted %q", body)
		}
		// The other way: bob's machine, which learnt the laptop through
		// the device-list update, decrypts what the laptop sends.
		fromLaptop := laptop.SendText(roomID, "hello bob, from the laptop")
		if got := bob.Decrypt(fromLaptop); got.Content.AsMessage().Body != "hello bob, from the laptop" || got.Sender != alice.UserID {
			t.Fatalf("bob decrypted %q from %s", got.Content.AsMessage().Body, got.Sender)
		}
	})
}
