package federation_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// Being a resident server (issue 14 items 1 to 3): what a server accepts
// through a membership handshake reaches the room's other servers
// through it, our own join is sent once, and an ACL reaches the servers
// it denies.

// TestResidentForwardsHandshakeEvents: hs1 holds a knock-only room that
// carol@hs3 is in; bob@hs2, whose server is not in the room, knocks,
// rejects an invite and joins, each through a handshake with hs1 alone.
// carol's server hears of every one of them from hs1, the only server
// that has them.
func TestResidentForwardsHandshakeEvents(t *testing.T) {
	testserver.EachEngineNetwork(t, 3, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1 := net.Servers[0]
		alice := hs1.Register("alice", "password1234")
		bob := net.Servers[1].Register("bob", "password1234")
		carol := net.Servers[2].Register("carol", "password1234")
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{carol.UserID},
			InitialState: []*event.Event{{Type: event.StateJoinRules, Content: event.Content{Parsed: &event.JoinRulesEventContent{JoinRule: event.JoinRuleKnock}}}}})
		if err != nil {
			t.Fatal(err)
		}
		room := created.RoomID
		if _, err := carol.JoinRoom(ctx, room.String(), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
			t.Fatalf("carol joins: %v", err)
		}
		waitForMembership(t, alice, room, carol.UserID.String(), event.MembershipJoin)

		if _, err := bob.KnockRoom(ctx, room.String(), &mautrix.ReqKnockRoom{Via: []string{"hs1.test"}, Reason: "let me in"}); err != nil {
			t.Fatalf("bob knocks: %v", err)
		}
		waitForMembership(t, carol, room, bob.UserID.String(), event.MembershipKnock)

		if _, err := alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
			t.Fatalf("alice invites bob: %v", err)
		}
		waitForMembership(t, carol, room, bob.UserID.String(), event.MembershipInvite)
		if _, err := bob.LeaveRoom(ctx, room); err != nil {
			t.Fatalf("bob rejects the invite: %v", err)
		}
		waitForMembership(t, carol, room, bob.UserID.String(), event.MembershipLeave)

		if _, err := alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
			t.Fatalf("alice invites bob again: %v", err)
		}
		if _, err := bob.JoinRoom(ctx, room.String(), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
			t.Fatalf("bob joins: %v", err)
		}
		waitForMembership(t, carol, room, bob.UserID.String(), event.MembershipJoin)
		send(t, bob, room, "bob is in")
		waitForText(t, carol, room, "bob is in")
	})
}

// TestOwnJoinSentOnce: bob@hs2 joins a room through hs3 while hs1, also
// in the room, is down. hs3 accepted the join for hs2 and forwards it to
// hs1; hs2 queues nothing but bob's own later message for hs1 (before,
// it queued its join again, which hs3 had and forwarded too). When hs1
// is back, alice sees both.
func TestOwnJoinSentOnce(t *testing.T) {
	testserver.EachEngineNetwork(t, 3, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2, hs3 := net.Servers[0], net.Servers[1], net.Servers[2]
		alice := hs1.Register("alice", "password1234")
		bob := hs2.Register("bob", "password1234")
		carol := hs3.Register("carol", "password1234")
		lobby, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		room := created.RoomID
		// hs2 learns hs1's keys while hs1 is up: the room's state, which
		// hs3 serves in the join below, is signed by hs1.
		if _, err := bob.JoinRoom(ctx, lobby.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
			t.Fatalf("bob joins the lobby: %v", err)
		}
		if _, err := carol.JoinRoom(ctx, room.String(), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
			t.Fatalf("carol joins: %v", err)
		}
		waitForMembership(t, alice, room, carol.UserID.String(), event.MembershipJoin)
		// hs3 serves joins only once it has the room's full state, which a
		// partial-state join fetches from hs1 in the background.
		sendPoll(t, "hs3 has the room's full state", func() string {
			if partial, _, err := hs3.Engine().PartialState(ctx, room.String()); err != nil || partial {
				return fmt.Sprintf("partial %v (%v)", partial, err)
			}
			return ""
		})
		hs1.Stop()

		if _, err := bob.JoinRoom(ctx, room.String(), &mautrix.ReqJoinRoom{Via: []string{"hs3.test"}}); err != nil {
			t.Fatalf("bob joins through hs3: %v", err)
		}
		send(t, bob, room, "joined through hs3")
		// Once hs3 has the message, hs2 has queued it, and its join
		// before it, for every destination.
		waitForText(t, carol, room, "joined through hs3")
		if n, err := hs2.Sender().Pending(ctx, "hs1.test"); err != nil || n != 1 {
			t.Fatalf("hs2 queued %d events for hs1 (%v), want only bob's message: the join is hs3's to forward", n, err)
		}
		sendPoll(t, "hs3 forwards bob's join to hs1", func() string {
			if n, err := hs3.Sender().Pending(ctx, "hs1.test"); err != nil || n < 1 {
				return fmt.Sprintf("%d queued (%v)", n, err)
			}
			return ""
		})

		hs1.Restart()
		hs1.Repoint(alice)
		waitForMembership(t, alice, room, bob.UserID.String(), event.MembershipJoin)
		waitForText(t, alice, room, "joined through hs3")
	})
}

// TestACLReachesDeniedServer: an ACL that denies hs2 is still sent to
// hs2 (it was in the room before the ACL took effect), so that bob's
// server knows it is denied; hs3, still allowed, gets it as before.
func TestACLReachesDeniedServer(t *testing.T) {
	testserver.EachEngineNetwork(t, 3, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		alice := net.Servers[0].Register("alice", "password1234")
		bob := net.Servers[1].Register("bob", "password1234")
		carol := net.Servers[2].Register("carol", "password1234")
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		room := created.RoomID
		for _, c := range []*mautrix.Client{bob, carol} {
			if _, err := c.JoinRoom(ctx, room.String(), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
				t.Fatalf("%s joins: %v", c.UserID, err)
			}
		}
		waitForMembership(t, alice, room, bob.UserID.String(), event.MembershipJoin)
		waitForMembership(t, alice, room, carol.UserID.String(), event.MembershipJoin)
		acl := &event.ServerACLEventContent{Allow: []string{"*"}, Deny: []string{"hs2.test"}}
		if _, err := alice.SendStateEvent(ctx, room, event.StateServerACL, "", acl); err != nil {
			t.Fatalf("alice denies hs2: %v", err)
		}
		for _, c := range []*mautrix.Client{bob, carol} {
			sendPoll(t, fmt.Sprintf("%s sees the ACL", c.UserID), func() string {
				var got event.ServerACLEventContent
				if err := c.StateEvent(ctx, room, event.StateServerACL, "", &got); err != nil || !slices.Contains(got.Deny, "hs2.test") {
					return fmt.Sprintf("ACL %+v (%v)", got, err)
				}
				return ""
			})
		}
	})
}

// TestSentEventsNotForwarded: what hs1 received over /send from its
// origin is that origin's to deliver: carol's message, which hs3 sent to
// hs1 and hs2 alike, is not queued again on hs1 for hs2 (down here, so
// that its queue can be read); alice's own message after it is.
func TestSentEventsNotForwarded(t *testing.T) {
	testserver.EachEngineNetwork(t, 3, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2 := net.Servers[0], net.Servers[1]
		alice := hs1.Register("alice", "password1234")
		bob := hs2.Register("bob", "password1234")
		carol := net.Servers[2].Register("carol", "password1234")
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		room := created.RoomID
		for _, c := range []*mautrix.Client{bob, carol} {
			if _, err := c.JoinRoom(ctx, room.String(), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
				t.Fatalf("%s joins: %v", c.UserID, err)
			}
			waitForMembership(t, alice, room, c.UserID.String(), event.MembershipJoin)
		}
		waitForMembership(t, carol, room, bob.UserID.String(), event.MembershipJoin)
		sendPoll(t, "hs1 delivered everything to hs2", func() string {
			if n, err := hs1.Sender().Pending(ctx, "hs2.test"); err != nil || n != 0 {
				return fmt.Sprintf("%d queued (%v)", n, err)
			}
			return ""
		})
		hs2.Stop()
		send(t, carol, room, "from carol")
		waitForText(t, alice, room, "from carol")
		send(t, alice, room, "from alice")
		// alice's message comes after carol's in hs1's stream: once it is
		// queued, carol's has been looked at.
		sendPoll(t, "hs1 queues alice's message for hs2", func() string {
			if n, err := hs1.Sender().Pending(ctx, "hs2.test"); err != nil || n < 1 {
				return fmt.Sprintf("%d queued (%v)", n, err)
			}
			return ""
		})
		if n, err := hs1.Sender().Pending(ctx, "hs2.test"); err != nil || n != 1 {
			t.Fatalf("hs1 queued %d events for hs2 (%v), want only alice's: carol's is hs3's to deliver", n, err)
		}
	})
}
