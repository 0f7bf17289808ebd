package federation_test

import (
	"context"
	"errors"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestJoinOverFederation: a user of hs2 joins a public room of hs1
// through make_join/send_join. Both servers then agree that the user is
// joined, and hs2 holds the room's state.
func TestJoinOverFederation(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2 := net.Servers[0], net.Servers[1]
		alice := hs1.Register("alice", "password1234")
		bob := hs2.Register("bob", "password1234")
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Federated", Topic: "across servers"})
		if err != nil {
			t.Fatal(err)
		}
		roomID := created.RoomID
		if _, err := bob.JoinRoom(ctx, roomID.String(), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
			t.Fatalf("bob joins over federation: %v", err)
		}
		wantJoined(t, alice, roomID, "@alice:hs1.test", "@bob:hs2.test")
		wantJoined(t, bob, roomID, "@alice:hs1.test", "@bob:hs2.test")
		var name event.RoomNameEventContent
		if err := bob.StateEvent(ctx, roomID, event.StateRoomName, "", &name); err != nil || name.Name != "Federated" {
			t.Fatalf("hs2's view of the room name: %q, %v", name.Name, err)
		}
		rooms, err := bob.JoinedRooms(ctx)
		if err != nil || len(rooms.JoinedRooms) != 1 || rooms.JoinedRooms[0] != roomID {
			t.Fatalf("bob's joined rooms on hs2: %v, %v", rooms, err)
		}
	})
}

// TestJoinOverFederationRefused: a join the room's rules forbid is
// refused by the resident server, and the client sees its M_FORBIDDEN.
func TestJoinOverFederationRefused(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2 := net.Servers[0], net.Servers[1]
		alice := hs1.Register("alice", "password1234")
		bob := hs2.Register("bob", "password1234")
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = bob.JoinRoom(ctx, created.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}})
		if !httpErrorIs(err, mautrix.MForbidden) {
			t.Fatalf("joining an invite-only room over federation: %v, want M_FORBIDDEN", err)
		}
		if m, _ := alice.JoinedMembers(ctx, created.RoomID); len(m.Joined) != 1 {
			t.Fatalf("hs1 members after a refused join: %v", m.Joined)
		}
	})
}

func wantJoined(t *testing.T, c *mautrix.Client, roomID id.RoomID, users ...string) {
	t.Helper()
	resp, err := c.JoinedMembers(context.Background(), roomID)
	if err != nil {
		t.Fatalf("%s: joined_members: %v", c.UserID, err)
	}
	if len(resp.Joined) != len(users) {
		t.Fatalf("%s sees members %v, want %v", c.UserID, keys(resp.Joined), users)
	}
	for _, u := range users {
		if _, ok := resp.Joined[id.UserID(u)]; !ok {
			t.Fatalf("%s sees members %v, want %v", c.UserID, keys(resp.Joined), users)
		}
	}
}

func keys[V any](m map[id.UserID]V) []id.UserID {
	out := make([]id.UserID, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func httpErrorIs(err error, code mautrix.RespError) bool {
	var he mautrix.HTTPError
	if !errors.As(err, &he) || he.RespError == nil {
		return false
	}
	return he.RespError.ErrCode == code.ErrCode
}
