package clientapi_test

import (
	"context"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestTrustedPrivateChatRemoteInvitee: trusted_private_chat makes every
// invitee an additional creator of a v12 room, also one on another
// server, invited over federation once the room exists.
func TestTrustedPrivateChatRemoteInvitee(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2 := net.Servers[0], net.Servers[1]
		alice := hs1.Register("alice", "pw")
		hs1.Register("carol", "pw")
		hs2.Register("bob", "pw")
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", RoomVersion: "12",
			Invite: []id.UserID{"@bob:hs2.test", "@carol:hs1.test"}})
		if err != nil {
			t.Fatal(err)
		}
		ac, _ := upgState(t, alice, created.RoomID, "m.room.create", "")["additional_creators"].([]any)
		if !slices.Contains(ac, any("@bob:hs2.test")) || !slices.Contains(ac, any("@carol:hs1.test")) {
			t.Fatalf("additional_creators = %v, want the remote and the local invitee", ac)
		}
	})
}
