package federation_test

import (
	"context"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// Leaving without the room (issue 14 item 4): an invite is rejected even
// when no server of the room takes the leave; an invite the inviter
// rescinds reaches the invitee's server; a moderator may redact an event
// this server never received.

// syncInvite syncs c from scratch (left rooms included) until the
// room's invite is there (present) or gone and the room left, the
// user's leave in its timeline.
func syncInvite(t *testing.T, c *mautrix.Client, roomID id.RoomID, present bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := c.FullSyncRequest(context.Background(), mautrix.ReqSync{FilterID: `{"room":{"include_leave":true}}`})
		if err != nil {
			t.Fatal(err)
		}
		_, invited := resp.Rooms.Invite[roomID]
		left := false
		if room, ok := resp.Rooms.Leave[roomID]; ok {
			// The user's own leave is in the room's timeline.
			for _, ev := range room.Timeline.Events {
				_ = ev.Content.ParseRaw(ev.Type)
				if ev.Type == event.StateMember && ev.GetStateKey() == c.UserID.String() &&
					ev.Content.AsMember().Membership == event.MembershipLeave {
					left = true
				}
			}
		}
		if present && invited || !present && !invited && left {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: invite to %s present=%v never seen", c.UserID, roomID, present)
}

// TestRejectInviteWithoutTheRoom: bob@hs2 rejects an invite to a room
// everyone has left (hs1 answers make_leave with 404), and then one whose
// only server is down. Both are rejected on hs2 alone, as Synapse does:
// the invites leave bob's /sync and the rooms show as left, also after
// hs2 restarts (its /sync used to fail with 404 on an invite to a room
// it is not in once the invite was no longer cached).
func TestRejectInviteWithoutTheRoom(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2 := net.Servers[0], net.Servers[1]
		alice := hs1.Register("alice", "password1234")
		bob := hs2.Register("bob", "password1234")
		abandoned, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{bob.UserID}})
		if err != nil {
			t.Fatal(err)
		}
		unreachable, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{bob.UserID}})
		if err != nil {
			t.Fatal(err)
		}
		syncInvite(t, bob, abandoned.RoomID, true)
		syncInvite(t, bob, unreachable.RoomID, true)
		// A restart forgets what the invites' room versions were.
		hs2.Restart()
		hs2.Repoint(bob)
		syncInvite(t, bob, unreachable.RoomID, true)
		if _, err := alice.LeaveRoom(ctx, abandoned.RoomID); err != nil {
			t.Fatal(err)
		}
		if _, err := bob.LeaveRoom(ctx, abandoned.RoomID); err != nil {
			t.Fatalf("bob rejects the invite to a room no one is in: %v", err)
		}
		syncInvite(t, bob, abandoned.RoomID, false)

		hs1.Stop()
		if _, err := bob.LeaveRoom(ctx, unreachable.RoomID, &mautrix.ReqLeave{Reason: "no thanks"}); err != nil {
			t.Fatalf("bob rejects the invite to a room on a server that is down: %v", err)
		}
		syncInvite(t, bob, unreachable.RoomID, false)
		// Rejected is rejected: a second leave has nothing to leave.
		if _, err := bob.LeaveRoom(ctx, unreachable.RoomID); err == nil {
			t.Fatal("bob left a room he had already rejected the invite to")
		}
		// Read back cold, the rooms (unknown here: no version stored) are
		// still read in the invites' versions.
		hs2.Restart()
		hs2.Repoint(bob)
		syncInvite(t, bob, abandoned.RoomID, false)
		syncInvite(t, bob, unreachable.RoomID, false)
	})
}

// TestRescindedInviteReachesInvitee: alice@hs1 invites bob@hs2 and then
// rescinds the invite (a kick of the invited user); bob's server, not in
// the room, hears of it and the invite leaves his /sync.
func TestRescindedInviteReachesInvitee(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		alice := net.Servers[0].Register("alice", "password1234")
		bob := net.Servers[1].Register("bob", "password1234")
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{bob.UserID}})
		if err != nil {
			t.Fatal(err)
		}
		syncInvite(t, bob, created.RoomID, true)
		if _, err := alice.KickUser(ctx, created.RoomID, &mautrix.ReqKickUser{UserID: bob.UserID, Reason: "sorry, wrong bob"}); err != nil {
			t.Fatalf("alice rescinds the invite: %v", err)
		}
		syncInvite(t, bob, created.RoomID, false)
		if _, err := bob.JoinRoom(ctx, created.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err == nil {
			t.Fatal("bob joined with a rescinded invite")
		}
	})
}

// TestRescindedInviteAfterLeaving: bob@hs2 was in the room and left; his
// server knows the room but is no longer in it, and hs1 refuses it the
// events since. alice invites bob again and rescinds it: hs2 takes the
// rescission on the invite's word, as for a room it never knew.
func TestRescindedInviteAfterLeaving(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		alice := net.Servers[0].Register("alice", "password1234")
		bob := net.Servers[1].Register("bob", "password1234")
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		room := created.RoomID
		if _, err := bob.JoinRoom(ctx, room.String(), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := bob.LeaveRoom(ctx, room); err != nil {
			t.Fatal(err)
		}
		waitForMembership(t, alice, room, bob.UserID.String(), event.MembershipLeave)
		send(t, alice, room, "while bob is away")
		if _, err := alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
			t.Fatal(err)
		}
		syncInvite(t, bob, room, true)
		if _, err := alice.KickUser(ctx, room, &mautrix.ReqKickUser{UserID: bob.UserID}); err != nil {
			t.Fatalf("alice rescinds the invite: %v", err)
		}
		syncInvite(t, bob, room, false)
	})
}

// TestRedactEventNotReceived: alice, who may redact anything in her
// room, redacts an event ID her server never received (another server's
// event still on its way, say); the redaction names it and reaches
// bob's server. bob, who may only redact his own events, is told such an
// event does not exist.
func TestRedactEventNotReceived(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		alice := net.Servers[0].Register("alice", "password1234")
		bob := net.Servers[1].Register("bob", "password1234")
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		room := created.RoomID
		if _, err := bob.JoinRoom(ctx, room.String(), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
			t.Fatal(err)
		}
		unknown := id.EventID("$NeverReceivedHereAAAAAAAAAAAAAAAAAAAAAAAAAA")
		red, err := alice.RedactEvent(ctx, room, unknown, mautrix.ReqRedact{Reason: "spam on its way"})
		if err != nil {
			t.Fatalf("alice redacts an event her server never received: %v", err)
		}
		testserver.SyncUntil(t, bob, "", "alice's redaction of "+unknown.String(), func(resp *mautrix.RespSync) bool {
			_, timeline := testserver.JoinedEvents(resp, room)
			for _, ev := range timeline {
				if ev.ID == red.EventID && ev.Type == event.EventRedaction && ev.Redacts == unknown {
					return true
				}
			}
			return false
		})
		_, err = bob.RedactEvent(ctx, room, unknown)
		testserver.WantHTTPError(t, "bob redacts an unknown event without the power to", err, 404, "M_NOT_FOUND")
		for _, bad := range []id.EventID{"not-an-event-id", "$"} {
			_, err = alice.RedactEvent(ctx, room, bad)
			testserver.WantHTTPError(t, "alice redacts "+bad.String(), err, 404, "M_NOT_FOUND")
		}
	})
}
