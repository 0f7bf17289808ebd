package clientapi_test

import (
	"context"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestSlidingSyncRoomsJoinedOverFederation: rooms joined over
// federation have their create event as an outlier, so their sliding_sync_room_meta
// row lacks the type; Element X's not_room_types must still leave a
// remote space out, before and after a restart, and the remote room is
// listed with a bump stamp.
func TestSlidingSyncRoomsJoinedOverFederation(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2 := net.Servers[0], net.Servers[1]
		alice, bob := hs1.Register("alice", "pw"), hs2.Register("bob", "pw")
		space := syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", CreationContent: map[string]any{"type": "m.space"}})
		room := syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "remote"})
		for _, r := range []string{space.String(), room.String()} {
			if _, err := bob.JoinRoom(ctx, r, &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
				t.Fatalf("bob joins %s: %v", r, err)
			}
		}
		check := func(what string) {
			t.Helper()
			var got *ssResp
			for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				list := roomList(0, 19)
				list["conn_id"] = "fed"
				got = ssOK(t, hs2, bob, "", 0, list)
				if got.Lists["all_rooms"].Count == 1 && got.Rooms[room.String()] != nil {
					break
				}
			}
			if got.Lists["all_rooms"].Count != 1 || got.Rooms[space.String()] != nil {
				t.Fatalf("%s: not_room_types kept the remote space: count %d, rooms %v", what, got.Lists["all_rooms"].Count, got.Rooms)
			}
			if r := got.Rooms[room.String()]; r == nil || r.BumpStamp == 0 || r.Name != "remote" {
				t.Fatalf("%s: remote room %+v", what, r)
			}
		}
		check("before a restart")
		hs2.Restart()
		hs2.Repoint(bob)
		check("after a restart")
	})
}
