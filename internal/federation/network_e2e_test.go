package federation_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// The federation scenarios on three servers, each user driving
// their own server with mautrix-go: a room with members on all three,
// messages in every direction seen in /sync, kicks and bans of remote
// users, profile and directory queries, backfill of history from before
// a join, and a server restarting while the others keep sending.

// waitForText syncs c until the room's timeline holds every text (in
// order), or fails after a deadline.
func waitForText(t *testing.T, c *mautrix.Client, roomID id.RoomID, texts ...string) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(20 * time.Second)
	var seen []string
	since := ""
	for time.Now().Before(deadline) {
		resp, err := c.FullSyncRequest(ctx, mautrix.ReqSync{Timeout: 1000, Since: since,
			FilterID: `{"room":{"timeline":{"limit":100}}}`})
		if err != nil {
			t.Fatalf("%s: sync: %v", c.UserID, err)
		}
		since = resp.NextBatch
		if room, ok := resp.Rooms.Join[roomID]; ok {
			for _, ev := range room.Timeline.Events {
				if ev.Type == event.EventMessage {
					_ = ev.Content.ParseRaw(ev.Type)
					seen = append(seen, ev.Content.AsMessage().Body)
				}
			}
		}
		if containsInOrder(seen, texts) {
			return
		}
	}
	t.Fatalf("%s never saw %q in %s; saw %q", c.UserID, texts, roomID, seen)
}

func containsInOrder(have, want []string) bool {
	i := 0
	for _, h := range have {
		if i < len(want) && h == want[i] {
			i++
		}
	}
	return i == len(want)
}

// waitForMembership polls c's view of a user's membership.
func waitForMembership(t *testing.T, c *mautrix.Client, roomID id.RoomID, user string, want event.Membership) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var m event.MemberEventContent
	var err error
	for time.Now().Before(deadline) {
		m = event.MemberEventContent{}
		err = c.StateEvent(context.Background(), roomID, event.StateMember, user, &m)
		if err == nil && m.Membership == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s sees %s as %q (%v), want %q", c.UserID, user, m.Membership, err, want)
}

func send(t *testing.T, c *mautrix.Client, roomID id.RoomID, text string) {
	t.Helper()
	if _, err := c.SendText(context.Background(), roomID, text); err != nil {
		t.Fatalf("%s sends %q: %v", c.UserID, text, err)
	}
}

// TestThreeServers: a room with a member on each of three servers.
// Every message reaches every server's /sync; a kick and a ban of remote
// users by the room's creator are seen everywhere and keep the banned
// user out.
func TestThreeServers(t *testing.T) {
	testserver.EachEngineNetwork(t, 3, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2, hs3 := net.Servers[0], net.Servers[1], net.Servers[2]
		alice := hs1.Register("alice", "password1234")
		bob := hs2.Register("bob", "password1234")
		carol := hs3.Register("carol", "password1234")
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Three servers"})
		if err != nil {
			t.Fatal(err)
		}
		room := created.RoomID
		if _, err := bob.JoinRoom(ctx, room.String(), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
			t.Fatalf("bob joins: %v", err)
		}
		// carol joins through bob's server, which is not the room's
		// creator. bob's server joined with partial state and, as
		// Synapse, refuses make_join until it holds the whole state.
		awaitFullState(t, hs2, room)
		if _, err := carol.JoinRoom(ctx, room.String(), &mautrix.ReqJoinRoom{Via: []string{"hs2.test"}}); err != nil {
			t.Fatalf("carol joins through hs2: %v", err)
		}
		for _, c := range []*mautrix.Client{alice, bob, carol} {
			waitForMembership(t, c, room, "@carol:hs3.test", event.MembershipJoin)
			waitForMembership(t, c, room, "@bob:hs2.test", event.MembershipJoin)
		}
		send(t, alice, room, "from hs1")
		send(t, bob, room, "from hs2")
		send(t, carol, room, "from hs3")
		for _, c := range []*mautrix.Client{alice, bob, carol} {
			for _, text := range []string{"from hs1", "from hs2", "from hs3"} {
				waitForText(t, c, room, text)
			}
		}

		if _, err := alice.KickUser(ctx, room, &mautrix.ReqKickUser{UserID: "@bob:hs2.test", Reason: "bye"}); err != nil {
			t.Fatalf("alice kicks bob: %v", err)
		}
		if _, err := alice.BanUser(ctx, room, &mautrix.ReqBanUser{UserID: "@carol:hs3.test", Reason: "spam"}); err != nil {
			t.Fatalf("alice bans carol: %v", err)
		}
		waitForMembership(t, alice, room, "@bob:hs2.test", event.MembershipLeave)
		waitForMembership(t, alice, room, "@carol:hs3.test", event.MembershipBan)
		// The kicked and banned users' servers learn of it too, although
		// no one there is in the room any more.
		waitForSyncLeave(t, bob, room)
		waitForSyncLeave(t, carol, room)
		if _, err := carol.JoinRoom(ctx, room.String(), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err == nil {
			t.Fatal("a banned user rejoined")
		}
		// bob was only kicked: he may come back.
		if _, err := bob.JoinRoom(ctx, room.String(), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
			t.Fatalf("bob rejoins after a kick: %v", err)
		}
		send(t, alice, room, "welcome back")
		waitForText(t, bob, room, "welcome back")
	})
}

// waitForSyncLeave syncs until the room shows up in c's leave section.
func waitForSyncLeave(t *testing.T, c *mautrix.Client, roomID id.RoomID) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	since := ""
	for time.Now().Before(deadline) {
		resp, err := c.FullSyncRequest(context.Background(), mautrix.ReqSync{Timeout: 1000, Since: since,
			FilterID: `{"room":{"include_leave":true}}`})
		if err != nil {
			t.Fatal(err)
		}
		since = resp.NextBatch
		if _, ok := resp.Rooms.Leave[roomID]; ok {
			return
		}
	}
	t.Fatalf("%s never saw %s in its leave section", c.UserID, roomID)
}

// TestQueriesOverFederation: profiles, aliases and the public room
// directory of another server, asked through one's own.
func TestQueriesOverFederation(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2 := net.Servers[0], net.Servers[1]
		alice := hs1.Register("alice", "password1234")
		bob := hs2.Register("bob", "password1234")
		if err := alice.SetDisplayName(ctx, "Alice of hs1"); err != nil {
			t.Fatal(err)
		}
		p, err := bob.GetProfile(ctx, "@alice:hs1.test")
		if err != nil || p.DisplayName != "Alice of hs1" {
			t.Fatalf("alice's profile from hs2: %+v, %v", p, err)
		}
		if _, err := bob.GetProfile(ctx, "@nobody:hs1.test"); !httpErrorIs(err, mautrix.MNotFound) {
			t.Fatalf("unknown remote user's profile: %v, want M_NOT_FOUND", err)
		}
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Visibility: "public",
			Name: "Lobby", RoomAliasName: "lobby"})
		if err != nil {
			t.Fatal(err)
		}
		rooms, err := bob.PublicRooms(ctx, &mautrix.ReqPublicRooms{Server: "hs1.test"})
		if err != nil {
			t.Fatalf("hs1's directory from hs2: %v", err)
		}
		if len(rooms.Chunk) != 1 || rooms.Chunk[0].RoomID != created.RoomID || rooms.Chunk[0].Name != "Lobby" {
			t.Fatalf("hs1's directory from hs2: %+v", rooms.Chunk)
		}
		alias, err := bob.ResolveAlias(ctx, "#lobby:hs1.test")
		if err != nil || alias.RoomID != created.RoomID || len(alias.Servers) == 0 || alias.Servers[0] != "hs1.test" {
			t.Fatalf("resolving #lobby:hs1.test from hs2: %+v, %v", alias, err)
		}
		// Joining by the remote alias finds the room and a server to join through.
		if _, err := bob.JoinRoom(ctx, "#lobby:hs1.test", nil); err != nil {
			t.Fatalf("bob joins #lobby:hs1.test: %v", err)
		}
		wantJoined(t, alice, created.RoomID, "@alice:hs1.test", "@bob:hs2.test")
	})
}

// TestBackfillBeforeJoin: history sent before a remote user joined is
// fetched from the room's server when their client pages back past the
// join, in order, as far as history visibility allows.
func TestBackfillBeforeJoin(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2 := net.Servers[0], net.Servers[1]
		alice := hs1.Register("alice", "password1234")
		bob := hs2.Register("bob", "password1234")
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Old history"})
		if err != nil {
			t.Fatal(err)
		}
		room := created.RoomID
		var want []string
		for i := range 30 {
			text := fmt.Sprintf("old message %02d", i)
			want = append(want, text)
			send(t, alice, room, text)
		}
		if _, err := bob.JoinRoom(ctx, room.String(), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
			t.Fatal(err)
		}
		var got []string
		from := ""
		for page := 0; page < 20; page++ {
			resp, err := bob.Messages(ctx, room, from, "", mautrix.DirectionBackward, nil, 10)
			if err != nil {
				t.Fatalf("page %d: %v", page, err)
			}
			for _, ev := range resp.Chunk {
				if ev.Type == event.EventMessage {
					_ = ev.Content.ParseRaw(ev.Type)
					got = append([]string{ev.Content.AsMessage().Body}, got...)
				}
			}
			if resp.End == "" {
				break
			}
			from = resp.End
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("bob's history after backfill:\n got %q\nwant %q", got, want)
		}
	})
}

// TestOpenID: a token from /openid/request_token tells a third party,
// through the user's server, who the user is, and nothing for others.
func TestOpenID(t *testing.T) {
	testserver.EachEngineNetwork(t, 1, nil, func(t *testing.T, net *testserver.Network) {
		hs1 := net.Servers[0]
		alice := hs1.Register("alice", "password1234")
		bob := hs1.Register("bob", "password1234")
		status, body := hs1.Do(t, http.MethodPost, "/_matrix/client/v3/user/@alice:hs1.test/openid/request_token", alice.AccessToken, map[string]any{})
		testserver.WantStatus(t, "request_token", status, body, http.StatusOK)
		token, _ := body["access_token"].(string)
		if token == "" || body["matrix_server_name"] != "hs1.test" || body["token_type"] != "Bearer" {
			t.Fatalf("request_token: %v", body)
		}
		status, body = hs1.Do(t, http.MethodPost, "/_matrix/client/v3/user/@alice:hs1.test/openid/request_token", bob.AccessToken, map[string]any{})
		testserver.WantStatus(t, "request_token for another user", status, body, http.StatusForbidden)

		info := func(tok string) (int, map[string]any) {
			status, out := net.SignedRequest(t, hs1, hs1, http.MethodGet, "/_matrix/federation/v1/openid/userinfo?access_token="+tok, nil)
			return status, out
		}
		if status, out := info(token); status != http.StatusOK || out["sub"] != "@alice:hs1.test" {
			t.Fatalf("userinfo: %d %v", status, out)
		}
		if status, out := info("bogus"); status != http.StatusUnauthorized || out["errcode"] != "M_UNKNOWN_TOKEN" {
			t.Fatalf("userinfo with a bogus token: %d %v", status, out)
		}
	})
}

// TestServerRestartMidConversation: with members on three servers, hs3
// goes down while the others keep talking; once it is back its user sees
// everything said meanwhile, and what she says reaches both others.
func TestServerRestartMidConversation(t *testing.T) {
	testserver.EachEngineNetwork(t, 3, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2, hs3 := net.Servers[0], net.Servers[1], net.Servers[2]
		alice := hs1.Register("alice", "password1234")
		bob := hs2.Register("bob", "password1234")
		carol := hs3.Register("carol", "password1234")
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
		waitForMembership(t, bob, room, "@carol:hs3.test", event.MembershipJoin)
		send(t, carol, room, "before the outage")
		waitForText(t, alice, room, "before the outage")
		waitForText(t, bob, room, "before the outage")

		hs3.Stop()
		// Messages of different servers are concurrent: only each
		// sender's own order is fixed.
		var fromAlice, fromBob []string
		for i := range 4 {
			a, b := fmt.Sprintf("alice during %d", i), fmt.Sprintf("bob during %d", i)
			send(t, alice, room, a)
			send(t, bob, room, b)
			fromAlice, fromBob = append(fromAlice, a), append(fromBob, b)
		}
		hs3.Restart()
		hs3.Repoint(carol)

		waitForText(t, carol, room, fromAlice...)
		waitForText(t, carol, room, fromBob...)
		send(t, carol, room, "back again")
		waitForText(t, alice, room, append(fromBob, "back again")...)
		waitForText(t, bob, room, append(fromAlice, "back again")...)
	})
}
