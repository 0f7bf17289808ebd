package federation_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/config"
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

// TestInviteOverFederation: alice@hs1 invites bob@hs2, whose server
// countersigns the invite; bob sees it in /sync with the room's stripped
// state before anyone on hs2 is in the room, and joins through the
// inviter's server. A second invitee rejects hers through make_leave and
// send_leave, and hs1 records the rejection.
func TestInviteOverFederation(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2 := net.Servers[0], net.Servers[1]
		alice := hs1.Register("alice", "password1234")
		bob := hs2.Register("bob", "password1234")
		carol := hs2.Register("carol", "password1234")
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Secret plans",
			Invite: []id.UserID{"@bob:hs2.test"}})
		if err != nil {
			t.Fatalf("createRoom inviting a remote user: %v", err)
		}
		roomID := created.RoomID
		if _, err := alice.InviteUser(ctx, roomID, &mautrix.ReqInviteUser{UserID: "@carol:hs2.test"}); err != nil {
			t.Fatalf("invite carol: %v", err)
		}
		if _, err := alice.InviteUser(ctx, roomID, &mautrix.ReqInviteUser{UserID: "@nobody:hs2.test"}); !httpErrorIs(err, mautrix.MNotFound) {
			t.Fatalf("inviting a user hs2 does not have: %v, want M_NOT_FOUND", err)
		}

		resp, err := bob.SyncRequest(ctx, 0, "", "", false, event.PresenceOnline)
		if err != nil {
			t.Fatal(err)
		}
		inv, ok := resp.Rooms.Invite[roomID]
		if !ok {
			t.Fatalf("bob's sync has no invite to %s: %+v", roomID, resp.Rooms.Invite)
		}
		var sawName, sawInvite, sawInviter bool
		for _, ev := range inv.State.Events {
			_ = ev.Content.ParseRaw(ev.Type)
			// The inviter's membership, which sync shows for local
			// invites, also comes in invite_room_state (as Synapse).
			if ev.Type == event.StateMember && ev.GetStateKey() == "@alice:hs1.test" &&
				ev.Content.AsMember().Membership == event.MembershipJoin {
				sawInviter = true
			}
			if ev.Type == event.StateRoomName && ev.Content.AsRoomName().Name == "Secret plans" {
				sawName = true
			}
			if ev.Type == event.StateMember && ev.GetStateKey() == "@bob:hs2.test" && ev.Sender == "@alice:hs1.test" &&
				ev.Content.AsMember().Membership == event.MembershipInvite {
				sawInvite = true
			}
		}
		if !sawName || !sawInvite || !sawInviter {
			t.Fatalf("invite state: name %v, invite %v, inviter %v: %+v", sawName, sawInvite, sawInviter, inv.State.Events)
		}

		// bob accepts: hs2 is not in the room, so the join goes through
		// the inviter's server.
		if _, err := bob.JoinRoomByID(ctx, roomID); err != nil {
			t.Fatalf("bob accepts the invite: %v", err)
		}
		wantJoined(t, alice, roomID, "@alice:hs1.test", "@bob:hs2.test")
		wantJoined(t, bob, roomID, "@alice:hs1.test", "@bob:hs2.test")
		// Both an incremental sync from the invite and an initial one
		// give the room's state, which the join brought: the invite was
		// stored without state, and the room must not start from it.
		for _, since := range []string{resp.NextBatch, ""} {
			wantSyncState(t, bob, since, roomID, event.StateCreate, event.StateRoomName)
		}

		// carol rejects hers: hs2 is now in the room, so her leave is an
		// ordinary local event, which hs1 learns through the sender; her
		// membership on hs2 changes at once.
		if _, err := carol.LeaveRoom(ctx, roomID); err != nil {
			t.Fatalf("carol rejects the invite: %v", err)
		}
		var m event.MemberEventContent
		if err := bob.StateEvent(ctx, roomID, event.StateMember, "@carol:hs2.test", &m); err != nil || m.Membership != event.MembershipLeave {
			t.Fatalf("carol's membership on hs2: %q, %v", m.Membership, err)
		}
	})
}

// wantSyncState waits for a sync from since to show the user joined to
// the room with state events of the given types in its state section.
func wantSyncState(t *testing.T, c *mautrix.Client, since string, roomID id.RoomID, types ...event.Type) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := c.SyncRequest(context.Background(), 1000, since, "", false, event.PresenceOnline)
		if err != nil {
			t.Fatal(err)
		}
		if room, ok := resp.Rooms.Join[roomID]; ok {
			have := map[event.Type]bool{}
			for _, ev := range room.State.Events {
				have[ev.Type] = true
			}
			for _, typ := range types {
				if !have[typ] {
					t.Fatalf("sync since %q: no %s in the state of %s: %+v", since, typ.Type, roomID, room.State.Events)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sync since %q never showed %s joined", since, roomID)
		}
		since = resp.NextBatch
	}
}

// TestRejectInviteOverFederation: an invitee whose server is not in the
// room rejects the invite through make_leave/send_leave on the inviter's
// server, which records the leave.
func TestRejectInviteOverFederation(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2 := net.Servers[0], net.Servers[1]
		alice := hs1.Register("alice", "password1234")
		bob := hs2.Register("bob", "password1234")
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{"@bob:hs2.test"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bob.LeaveRoom(ctx, created.RoomID); err != nil {
			t.Fatalf("bob rejects the invite: %v", err)
		}
		var m event.MemberEventContent
		if err := alice.StateEvent(ctx, created.RoomID, event.StateMember, "@bob:hs2.test", &m); err != nil || m.Membership != event.MembershipLeave {
			t.Fatalf("bob's membership on hs1 after rejecting: %q, %v", m.Membership, err)
		}
		resp, err := bob.SyncRequest(ctx, 0, "", "", false, event.PresenceOnline)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := resp.Rooms.Invite[created.RoomID]; ok {
			t.Fatalf("bob's sync still shows the rejected invite")
		}
		// He can no longer join an invite-only room.
		if _, err := bob.JoinRoomByID(ctx, created.RoomID); err == nil {
			t.Fatalf("bob joined an invite-only room after rejecting the invite")
		}
	})
}

// TestKnockOverFederation: bob@hs2 knocks on a knockable room of hs1;
// alice sees the knock, invites him, and he joins.
func TestKnockOverFederation(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2 := net.Servers[0], net.Servers[1]
		alice := hs1.Register("alice", "password1234")
		bob := hs2.Register("bob", "password1234")
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Knock knock",
			InitialState: []*event.Event{{Type: event.StateJoinRules, Content: event.Content{Parsed: &event.JoinRulesEventContent{JoinRule: event.JoinRuleKnock}}}}})
		if err != nil {
			t.Fatal(err)
		}
		roomID := created.RoomID
		if _, err := bob.KnockRoom(ctx, roomID.String(), &mautrix.ReqKnockRoom{Via: []string{"hs1.test"}, Reason: "let me in"}); err != nil {
			t.Fatalf("bob knocks: %v", err)
		}
		var m event.MemberEventContent
		if err := alice.StateEvent(ctx, roomID, event.StateMember, "@bob:hs2.test", &m); err != nil || m.Membership != event.MembershipKnock {
			t.Fatalf("bob's membership on hs1 after knocking: %q, %v", m.Membership, err)
		}
		resp, err := bob.SyncRequest(ctx, 0, "", "", false, event.PresenceOnline)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := resp.Rooms.Knock[roomID]; !ok {
			t.Fatalf("bob's sync has no knock on %s", roomID)
		}
		if _, err := alice.InviteUser(ctx, roomID, &mautrix.ReqInviteUser{UserID: "@bob:hs2.test"}); err != nil {
			t.Fatalf("alice accepts the knock with an invite: %v", err)
		}
		if _, err := bob.JoinRoomByID(ctx, roomID); err != nil {
			t.Fatalf("bob joins: %v", err)
		}
		wantJoined(t, alice, roomID, "@alice:hs1.test", "@bob:hs2.test")
	})
}

// TestUntrustedCertificateRefused: a server that does not trust the test
// CA cannot reach the others: certificates are verified.
func TestUntrustedCertificateRefused(t *testing.T) {
	net := testserver.StartNetwork(t, "sqlite", 2, func(i int, c *config.Config) {
		if i == 1 {
			c.Federation.CAFile = ""
		}
	})
	ctx := context.Background()
	alice := net.Servers[0].Register("alice", "password1234")
	bob := net.Servers[1].Register("bob", "password1234")
	created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoom(ctx, created.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err == nil {
		t.Fatal("joined through a server whose certificate is not trusted")
	}
	wantJoined(t, alice, created.RoomID, "@alice:hs1.test")
}
