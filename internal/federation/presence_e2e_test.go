package federation_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestPresenceEDU: alice on hs1 and bob on hs2 share a room; alice's
// presence reaches hs2 as an m.presence EDU, where bob reads it. hs2
// keeps no presence of hs1's users that hs3 claims to send.
func TestPresenceEDU(t *testing.T) {
	testserver.EachEngineNetwork(t, 3, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2, hs3 := net.Servers[0], net.Servers[1], net.Servers[2]
		alice := hs1.Register("alice", "pw-alice")
		bob := hs2.Register("bob", "pw-bob")
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bob.JoinRoom(ctx, created.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
			t.Fatal(err)
		}
		// Before any EDU, hs2 knows nothing of alice's presence.
		_, err = bob.GetPresence(ctx, alice.UserID)
		testserver.WantHTTPError(t, "alice's presence before any EDU", err, http.StatusNotFound, "M_NOT_FOUND")

		if err := alice.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceOnline, StatusMsg: "from hs1"}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			p, err := bob.GetPresence(ctx, alice.UserID)
			if err == nil && p.Presence == event.PresenceOnline && p.StatusMsg == "from hs1" && p.CurrentlyActive {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("alice's presence never reached hs2: %+v, %v", p, err)
			}
			time.Sleep(50 * time.Millisecond)
		}

		// hs3 speaks for hs1's users: ignored.
		st, body := net.SignedRequest(t, hs3, hs2, http.MethodPut, "/_matrix/federation/v1/send/forged1", map[string]any{
			"origin": "hs3.test", "origin_server_ts": time.Now().UnixMilli(), "pdus": []any{},
			"edus": []any{map[string]any{"edu_type": "m.presence", "content": map[string]any{"push": []any{
				map[string]any{"user_id": string(alice.UserID), "presence": "offline", "last_active_ago": 0}}}}},
		})
		testserver.WantStatus(t, "forged presence", st, body, http.StatusOK)
		if p, err := bob.GetPresence(ctx, alice.UserID); err != nil || p.Presence != event.PresenceOnline {
			t.Fatalf("after hs3's forgery alice is %+v, %v", p, err)
		}
	})
}

// TestPresenceEDUOff: a server with presence off sends no m.presence.
func TestPresenceEDUOff(t *testing.T) {
	off := func(i int, c *config.Config) { c.Presence.Enabled = i != 0 }
	testserver.EachEngineNetwork(t, 2, off, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2 := net.Servers[0], net.Servers[1]
		alice := hs1.Register("alice", "pw-alice")
		bob := hs2.Register("bob", "pw-bob")
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bob.JoinRoom(ctx, created.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
			t.Fatal(err)
		}
		if err := alice.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceOnline}); err != nil {
			t.Fatal(err)
		}
		// A message after the presence update: once it arrives, an EDU
		// queued before it would have too (one queue per destination).
		sent, err := alice.SendText(ctx, created.RoomID, "after presence")
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			if _, err := bob.GetEvent(ctx, created.RoomID, sent.EventID); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("alice's message never reached hs2")
			}
			time.Sleep(50 * time.Millisecond)
		}
		_, err = bob.GetPresence(ctx, alice.UserID)
		testserver.WantHTTPError(t, "alice's presence from a server with presence off", err, http.StatusNotFound, "M_NOT_FOUND")
	})
}

// TestPresenceOnJoin: alice@hs1 and carol@hs2 are online before they
// share a room; when alice joins carol's room, each server sends the
// other its user's presence (hs1 on its user's join, hs2 on a remote
// user's join), without waiting for either presence to change.
func TestPresenceOnJoin(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2 := net.Servers[0], net.Servers[1]
		alice := hs1.Register("alice", "pw-alice")
		carol := hs2.Register("carol", "pw-carol")
		if err := alice.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceOnline, StatusMsg: "alice here"}); err != nil {
			t.Fatal(err)
		}
		if err := carol.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceOnline, StatusMsg: "carol here"}); err != nil {
			t.Fatal(err)
		}
		created, err := carol.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := alice.JoinRoom(ctx, created.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{"hs2.test"}}); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			viewer *mautrix.Client
			user   *mautrix.Client
			status string
		}{{alice, carol, "carol here"}, {carol, alice, "alice here"}} {
			deadline := time.Now().Add(20 * time.Second)
			for {
				p, err := c.viewer.GetPresence(ctx, c.user.UserID)
				if err == nil && p.Presence == event.PresenceOnline && p.StatusMsg == c.status {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s never learnt %s's presence: %+v, %v", c.viewer.UserID, c.user.UserID, p, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	})
}

// TestPresenceEDUStatusMsgBounded: a status_msg another server sends
// over limits.max_status_msg_bytes is not kept (every local user sharing
// a room would receive it), the presence it came with is.
func TestPresenceEDUStatusMsgBounded(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, func(_ int, c *config.Config) { c.Limits.MaxStatusMsgBytes = 64 }, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2 := net.Servers[0], net.Servers[1]
		alice := hs1.Register("alice", "pw-alice")
		bob := hs2.Register("bob", "pw-bob")
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bob.JoinRoom(ctx, created.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
			t.Fatal(err)
		}
		send := func(txn, presence, msg string) {
			st, body := net.SignedRequest(t, hs1, hs2, http.MethodPut, "/_matrix/federation/v1/send/"+txn, map[string]any{
				"origin": "hs1.test", "origin_server_ts": time.Now().UnixMilli(), "pdus": []any{},
				"edus": []any{map[string]any{"edu_type": "m.presence", "content": map[string]any{"push": []any{
					map[string]any{"user_id": string(alice.UserID), "presence": presence, "status_msg": msg, "last_active_ago": 0}}}}},
			})
			testserver.WantStatus(t, "presence EDU", st, body, http.StatusOK)
		}
		send("big1", "unavailable", strings.Repeat("s", 65))
		if p, err := bob.GetPresence(ctx, alice.UserID); err != nil || p.Presence != event.PresenceUnavailable || p.StatusMsg != "" {
			t.Fatalf("after a 65-byte status_msg alice is %+v, %v; want unavailable without the message", p, err)
		}
		fits := strings.Repeat("s", 64)
		send("fits1", "online", fits)
		if p, err := bob.GetPresence(ctx, alice.UserID); err != nil || p.Presence != event.PresenceOnline || p.StatusMsg != fits {
			t.Fatalf("after a 64-byte status_msg alice is %+v, %v", p, err)
		}
	})
}
