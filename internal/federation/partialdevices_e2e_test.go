package federation_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
	"github.com/myelin-chat/myelin/internal/testserver/peer"
)

// TestDeviceListsAfterPartialStateCompletes: the peer's room has zed of
// hs1 among its members, but its servers_in_room for bob's
// partial-state join from hs2 leaves hs1 out, and zed is not among the
// heroes: while the state is partial hs2 does not know hs1 is in the
// room. A new device of bob's then reaches the servers hs2 knows only.
// Once the state completes, hs2 sends bob's device list to hs1, a
// server of the full state that shares no other room with him (Synapse's
// handle_room_un_partial_stated), and hs1's cached list gets the device.
func TestDeviceListsAfterPartialStateCompletes(t *testing.T) {
	peer.EachEngine(t, 2, partialJoins, func(t *testing.T, net *testserver.Network, p *peer.Peer) {
		ctx := context.Background()
		hs1, hs2 := net.Servers[0], net.Servers[1]
		room := p.CreateRoom(t)
		for i := 1; i <= 5; i++ {
			u := p.UserID(fmt.Sprintf("u%d", i))
			room.Create(t, u, spec.MRoomMember, &u, map[string]string{"membership": spec.Join})
		}
		peerJoin(t, hs1, p, room, "zed")
		awaitFullState(t, hs1, id.RoomID(room.ID))
		p.OnServersInRoom(func(servers []string) []string {
			return slices.DeleteFunc(servers, func(s string) bool { return s == "hs1.test" })
		})

		release := hs2.PartialStateResync().Hold()
		defer release()
		bob := peerJoin(t, hs2, p, room, "bob")
		bobID := bob.UserID.String()
		uploadE2EKeys(t, hs2, bob.AccessToken, bobID, bob.DeviceID.String(), 0, false)
		// The peer forwards bob's join to hs1, which starts tracking his
		// list (fetched from hs2).
		join := room.Event(room.Extremities()[0])
		if join == nil || join.Type() != spec.MRoomMember || *join.StateKey() != bobID {
			t.Fatalf("the peer's latest event is not bob's join: %v", join)
		}
		if verdict := p.Send(t, hs1, join); verdict[join.EventID()] != "" {
			t.Fatalf("bob's join refused by hs1: %v", verdict)
		}
		cached := func() int {
			t.Helper()
			devices, ok, err := hs1.Keys().CachedDevices(ctx, bobID)
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
			deadline := time.Now().Add(30 * time.Second)
			for !ok() {
				if time.Now().After(deadline) {
					t.Fatalf("never: %s", what)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		waitFor("hs1 caching bob's list", func() bool { return cached() == 1 })
		if partial, _, err := hs2.Engine().PartialState(ctx, room.ID); err != nil || !partial {
			t.Fatalf("hs2's room: partial %v, %v", partial, err)
		}

		// bob's phone, while hs2 knows of the peer only.
		phone := hs2.Client()
		if _, err := phone.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, StoreCredentials: true,
			Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "bob"}, Password: "password"}); err != nil {
			t.Fatal(err)
		}
		uploadE2EKeys(t, hs2, phone.AccessToken, bobID, phone.DeviceID.String(), 0, false)

		release()
		awaitFullState(t, hs2, id.RoomID(room.ID))
		waitFor("bob's phone in hs1's cached list", func() bool { return cached() == 2 })
	})
}
