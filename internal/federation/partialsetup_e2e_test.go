package federation_test

import (
	"context"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// partialRoom is where the tests of what bob's clients see of a
// partial-state join start: alice and carol of hs1 are in a named
// public room of alice's, which bob of hs2 has joined with partial state
// (hs2 knows only bob's membership), its resync held until release.
type partialRoom struct {
	roomID            id.RoomID
	alice, carol, bob *mautrix.Client
	release           func()
}

func joinPartial(t *testing.T, net *testserver.Network) partialRoom {
	t.Helper()
	ctx := context.Background()
	hs1, hs2 := net.Servers[0], net.Servers[1]
	p := partialRoom{alice: hs1.Register("alice", "password1234"), carol: hs1.Register("carol", "password1234"),
		bob: hs2.Register("bob", "password1234")}
	p.roomID = testserver.Room(t, p.alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Partial"}, p.carol)
	p.release = hs2.PartialStateResync().Hold()
	t.Cleanup(p.release)
	if _, err := p.bob.JoinRoom(ctx, p.roomID.String(), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
		t.Fatal(err)
	}
	if partial, _, err := hs2.Engine().PartialState(ctx, p.roomID.String()); err != nil || !partial {
		t.Fatalf("hs2's room after the join: partial %v, %v", partial, err)
	}
	return p
}
