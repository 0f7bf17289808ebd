package appservice_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	mas "maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/server"
	"github.com/myelin-chat/myelin/internal/testdb"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// bridge is a mautrix-go appservice, run as a bridge runs it: its HTTP
// server on loopback receives Myelin's transactions and queries.
type bridge struct {
	t    *testing.T
	as   *mas.AppService
	path string // the registration file
	// queried are the users and aliases Myelin asked about.
	queried chan string
	done    chan struct{}
}

// bridgeQueries answers Myelin's user queries by registering the
// puppet, as bridges do for ghosts they know.
type bridgeQueries struct{ b *bridge }

func (q bridgeQueries) QueryAlias(alias id.RoomAlias) bool {
	q.b.queried <- string(alias)
	return false
}

func (q bridgeQueries) QueryUser(userID id.UserID) bool {
	q.b.queried <- string(userID)
	if !strings.HasPrefix(userID.Localpart(), "puppet_known") {
		return false
	}
	return q.b.as.Intent(userID).EnsureRegistered(context.Background()) == nil
}

func freePort(t *testing.T) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

// newBridge writes the registration of a bridge owning @puppet_*:server
// (exclusively) and #bridged_*:server, and makes the appservice; it is
// not listening until start.
func newBridge(t *testing.T, server string) *bridge {
	t.Helper()
	port := freePort(t)
	noLimit := false
	esc := strings.ReplaceAll(server, ".", `\.`)
	reg := &mas.Registration{
		ID: "testbridge", URL: fmt.Sprintf("http://127.0.0.1:%d", port),
		AppToken: "as_token_" + t.Name(), ServerToken: "hs_token_" + t.Name(), SenderLocalpart: "bridgebot",
		RateLimited: &noLimit,
		Namespaces: mas.Namespaces{
			UserIDs:     mas.NamespaceList{{Regex: "@puppet_.*:" + esc, Exclusive: true}},
			RoomAliases: mas.NamespaceList{{Regex: "#bridged_.*:" + esc, Exclusive: true}},
		},
	}
	path := filepath.Join(t.TempDir(), "bridge.yaml")
	if err := reg.Save(path); err != nil {
		t.Fatal(err)
	}
	as := mas.Create()
	as.Registration = reg
	as.HomeserverDomain = server
	as.Host = mas.HostConfig{Hostname: "127.0.0.1", Port: port}
	b := &bridge{t: t, as: as, path: path, queried: make(chan string, 16)}
	as.QueryHandler = bridgeQueries{b}
	t.Cleanup(b.stop)
	return b
}

// start runs the bridge's HTTP server and waits until it answers.
func (b *bridge) start(hsURL string) {
	b.t.Helper()
	if err := b.as.SetHomeserverURL(hsURL); err != nil {
		b.t.Fatal(err)
	}
	done := make(chan struct{})
	b.done = done
	go func() {
		defer close(done)
		b.as.Start()
	}()
	for i := 0; ; i++ {
		resp, err := http.Get(b.as.Registration.URL + "/_matrix/mau/live")
		if err == nil {
			resp.Body.Close()
			return
		}
		if i > 500 {
			b.t.Fatalf("bridge did not start: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (b *bridge) stop() {
	if b.done == nil {
		return
	}
	b.as.Stop()
	<-b.done
	b.done = nil
}

// next returns the next event the bridge received that match accepts,
// failing the test if none comes within a generous bound.
func (b *bridge) next(what string, match func(*event.Event) bool) *event.Event {
	b.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case evt := <-b.as.Events:
			if match(evt) {
				return evt
			}
		case <-deadline:
			b.t.Fatalf("bridge never received %s", what)
		}
	}
}

// messages collects the bodies of the next n m.room.message events of a
// room the bridge receives, in the order received.
func (b *bridge) messages(roomID id.RoomID, n int) []string {
	b.t.Helper()
	var out []string
	for len(out) < n {
		evt := b.next(fmt.Sprintf("message %d of %d", len(out)+1, n), func(e *event.Event) bool {
			return e.RoomID == roomID && e.Type == event.EventMessage
		})
		out = append(out, evt.Content.AsMessage().Body)
	}
	return out
}

func withBridge(b *bridge) func(*config.Config) {
	return func(c *config.Config) { c.AppServices.Files = []string{b.path} }
}

// eachEngine starts, per database engine, a bridge's registration and a
// server hosting it, then the bridge.
func eachEngine(t *testing.T, fn func(t *testing.T, s *testserver.Server, b *bridge)) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		b := newBridge(t, "hs1.test")
		s := testserver.Start(t, dbURL, withBridge(b))
		b.start(s.URL)
		fn(t, s, b)
	})
}

func TestAppServiceBridge(t *testing.T) {
	eachEngine(t, func(t *testing.T, s *testserver.Server, b *bridge) {
		ctx := context.Background()
		alice := s.Register("alice", "password")
		room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}

		// A puppet registers (m.login.application_service, inhibit_login)
		// and is invited: the invite reaches the bridge.
		puppet := b.as.Intent(id.UserID(s.UserID("puppet_1")))
		if err := puppet.EnsureRegistered(ctx); err != nil {
			t.Fatalf("registering a puppet: %v", err)
		}
		if _, err := alice.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: puppet.UserID}); err != nil {
			t.Fatal(err)
		}
		inv := b.next("the puppet's invite", func(e *event.Event) bool {
			return e.Type == event.StateMember && e.GetStateKey() == string(puppet.UserID)
		})
		if inv.Content.AsMember().Membership != event.MembershipInvite || inv.RoomID != room.RoomID {
			t.Fatalf("invite event = %+v", inv)
		}

		// The puppet joins and sends with a bridged timestamp.
		if err := puppet.EnsureJoined(ctx, room.RoomID); err != nil {
			t.Fatal(err)
		}
		bridgedTS := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli()
		sent, err := puppet.SendMessageEvent(ctx, room.RoomID, event.EventMessage,
			&event.MessageEventContent{MsgType: event.MsgText, Body: "from the other network"}, mautrix.ReqSendEvent{Timestamp: bridgedTS})
		if err != nil {
			t.Fatal(err)
		}
		evt, err := alice.GetEvent(ctx, room.RoomID, sent.EventID)
		if err != nil {
			t.Fatal(err)
		}
		if evt.Timestamp != bridgedTS || evt.Sender != puppet.UserID {
			t.Fatalf("puppet's message: ts %d sender %s, want %d %s", evt.Timestamp, evt.Sender, bridgedTS, puppet.UserID)
		}
		// ts from a normal user is ignored, not honoured.
		plain, err := alice.SendMessageEvent(ctx, room.RoomID, event.EventMessage,
			&event.MessageEventContent{MsgType: event.MsgText, Body: "hello bridge"}, mautrix.ReqSendEvent{Timestamp: bridgedTS})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := alice.GetEvent(ctx, room.RoomID, plain.EventID); err != nil || got.Timestamp == bridgedTS {
			t.Fatalf("a normal user's ts was honoured (%v)", err)
		}
		// State with ts.
		stateResp, err := puppet.SendStateEvent(ctx, room.RoomID, event.StateMember, string(puppet.UserID),
			map[string]any{"membership": "join", "displayname": "Bridged Puppet"}, mautrix.ReqSendEvent{Timestamp: bridgedTS + 1})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := alice.GetEvent(ctx, room.RoomID, stateResp.EventID); err != nil || got.Timestamp != bridgedTS+1 {
			t.Fatalf("state event ts: %v %v", got, err)
		}

		// Alice's messages reach the bridge, in order.
		got := b.messages(room.RoomID, 2)
		if got[0] != "from the other network" || got[1] != "hello bridge" {
			t.Fatalf("bridge received %q", got)
		}
	})
}

func TestAppServiceIdentityAssertion(t *testing.T) {
	eachEngine(t, func(t *testing.T, s *testserver.Server, b *bridge) {
		ctx := context.Background()
		token := b.as.Registration.AppToken
		whoami := func(userID string) (int, map[string]any) {
			path := "/_matrix/client/v3/account/whoami"
			if userID != "" {
				path += "?user_id=" + strings.ReplaceAll(userID, "@", "%40")
			}
			return s.Do(t, http.MethodGet, path, token, nil)
		}
		status, body := whoami("")
		if status != http.StatusOK || body["user_id"] != s.UserID("bridgebot") {
			t.Fatalf("whoami as the sender: %d %v", status, body)
		}
		// An unregistered puppet: Synapse's 403.
		status, body = whoami(s.UserID("puppet_ghost"))
		testserver.WantError(t, "unregistered puppet", status, body, http.StatusForbidden, "M_FORBIDDEN")
		// Outside the namespaces.
		s.Register("bob", "password")
		status, body = whoami(s.UserID("bob"))
		testserver.WantError(t, "masquerading outside the namespace", status, body, http.StatusForbidden, "M_FORBIDDEN")
		status, body = whoami("@puppet_1:other.test")
		testserver.WantError(t, "masquerading as a remote user", status, body, http.StatusForbidden, "M_FORBIDDEN")
		// Registered puppet.
		if err := b.as.Intent(id.UserID(s.UserID("puppet_2"))).EnsureRegistered(ctx); err != nil {
			t.Fatal(err)
		}
		status, body = whoami(s.UserID("puppet_2"))
		if status != http.StatusOK || body["user_id"] != s.UserID("puppet_2") {
			t.Fatalf("whoami as a puppet: %d %v", status, body)
		}
		// A wrong as_token is no token at all.
		status, body = s.Do(t, http.MethodGet, "/_matrix/client/v3/account/whoami?user_id=%40puppet_2%3Ahs1.test", "as_token_wrong", nil)
		testserver.WantError(t, "unknown token", status, body, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")

		// Registration: the service outside its namespace, a wrong token,
		// a user in the namespace by normal registration.
		reg := func(username, tok string) (int, map[string]any) {
			return s.Do(t, http.MethodPost, "/_matrix/client/v3/register", tok,
				map[string]any{"type": "m.login.application_service", "username": username, "inhibit_login": true})
		}
		status, body = reg("carol", token)
		testserver.WantError(t, "AS registering outside its namespace", status, body, http.StatusBadRequest, "M_EXCLUSIVE")
		status, body = reg("puppet_3", "as_token_wrong")
		testserver.WantError(t, "AS registration with a wrong token", status, body, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
		status, body = reg("puppet_3", "")
		testserver.WantError(t, "AS registration without a token", status, body, http.StatusUnauthorized, "M_MISSING_TOKEN")
		status, body = reg("puppet_3", token)
		if status != http.StatusOK || body["user_id"] != s.UserID("puppet_3") || body["access_token"] != nil {
			t.Fatalf("AS registration with inhibit_login: %d %v", status, body)
		}
		status, body = reg("puppet_3", token)
		testserver.WantError(t, "registering a puppet twice", status, body, http.StatusBadRequest, "M_USER_IN_USE")
		status, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/register", "",
			map[string]any{"username": "puppet_4", "password": "password", "auth": map[string]any{"type": "m.login.dummy"}})
		testserver.WantError(t, "normal registration in an exclusive namespace", status, body, http.StatusBadRequest, "M_EXCLUSIVE")
		status, body = s.Do(t, http.MethodGet, "/_matrix/client/v3/register/available?username=puppet_4", "", nil)
		testserver.WantError(t, "availability in an exclusive namespace", status, body, http.StatusBadRequest, "M_EXCLUSIVE")

		// Login with m.login.application_service: a device for a
		// registered puppet; not for others' users nor unregistered ones.
		login := func(user, tok string) (int, map[string]any) {
			return s.Do(t, http.MethodPost, "/_matrix/client/v3/login", tok, map[string]any{"type": "m.login.application_service",
				"identifier": map[string]any{"type": "m.id.user", "user": user}, "device_id": "BRIDGEDEV"})
		}
		status, body = login(s.UserID("puppet_3"), token)
		if status != http.StatusOK || body["user_id"] != s.UserID("puppet_3") || body["device_id"] != "BRIDGEDEV" || body["access_token"] == nil {
			t.Fatalf("AS login: %d %v", status, body)
		}
		status, body = s.Do(t, http.MethodGet, "/_matrix/client/v3/account/whoami", body["access_token"].(string), nil)
		if status != http.StatusOK || body["device_id"] != "BRIDGEDEV" {
			t.Fatalf("whoami with the AS login's token: %d %v", status, body)
		}
		status, body = login("bob", token)
		testserver.WantError(t, "AS login outside the namespace", status, body, http.StatusForbidden, "M_FORBIDDEN")
		status, body = login("puppet_unregistered", token)
		testserver.WantError(t, "AS login as an unregistered puppet", status, body, http.StatusForbidden, "M_FORBIDDEN")
		status, body = login(s.UserID("puppet_3"), "as_token_wrong")
		testserver.WantError(t, "AS login with a wrong token", status, body, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")

		// Aliases: exclusive to the service.
		alice := s.Register("alice", "password")
		room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = alice.CreateAlias(ctx, id.RoomAlias("#bridged_x:hs1.test"), room.RoomID)
		testserver.WantHTTPError(t, "a user creating an alias in an exclusive namespace", err, http.StatusBadRequest, "M_EXCLUSIVE")
		if _, err := alice.CreateAlias(ctx, id.RoomAlias("#free:hs1.test"), room.RoomID); err != nil {
			t.Fatalf("an alias outside the namespaces: %v", err)
		}
		_, err = alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", RoomAliasName: "bridged_y"})
		testserver.WantHTTPError(t, "a user creating a room with an alias in an exclusive namespace", err, http.StatusBadRequest, "M_EXCLUSIVE")
		if _, err := b.as.BotIntent().CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", RoomAliasName: "bridged_z"}); err != nil {
			t.Fatalf("the service creating a room with its own alias: %v", err)
		}
		bot := b.as.BotIntent()
		if err := bot.EnsureJoined(ctx, room.RoomID); err != nil {
			t.Fatal(err)
		}
		if _, err := bot.CreateAlias(ctx, id.RoomAlias("#bridged_x:hs1.test"), room.RoomID); err != nil {
			t.Fatalf("the service's own alias: %v", err)
		}
	})
}

func TestAppServiceQueriesAndPing(t *testing.T) {
	eachEngine(t, func(t *testing.T, s *testserver.Server, b *bridge) {
		ctx := context.Background()
		alice := s.Register("alice", "password")
		// An unknown puppet the bridge knows: asked, created, answered.
		known := id.UserID(s.UserID("puppet_known_1"))
		if _, err := alice.GetProfile(ctx, known); err != nil {
			t.Fatalf("profile of a puppet the bridge creates on query: %v", err)
		}
		if q := <-b.queried; q != string(known) {
			t.Fatalf("queried %q, want %q", q, known)
		}
		// One it does not know: asked, still 404.
		unknown := id.UserID(s.UserID("puppet_nobody"))
		_, err := alice.GetProfile(ctx, unknown)
		testserver.WantHTTPError(t, "profile of a puppet the bridge does not know", err, http.StatusNotFound, "M_NOT_FOUND")
		if q := <-b.queried; q != string(unknown) {
			t.Fatalf("queried %q, want %q", q, unknown)
		}
		// An alias in the namespace is asked about too.
		_, err = alice.ResolveAlias(ctx, "#bridged_nothing:hs1.test")
		testserver.WantHTTPError(t, "an alias the bridge does not know", err, http.StatusNotFound, "M_NOT_FOUND")
		if q := <-b.queried; q != "#bridged_nothing:hs1.test" {
			t.Fatalf("queried %q", q)
		}

		// Ping through the homeserver.
		resp, err := b.as.BotClient().AppservicePing(ctx, "testbridge", "ping-1")
		if err != nil {
			t.Fatalf("ping: %v", err)
		}
		if resp.DurationMS < 0 {
			t.Fatalf("duration_ms %d", resp.DurationMS)
		}
		_, err = b.as.BotClient().AppservicePing(ctx, "otherbridge", "")
		testserver.WantHTTPError(t, "pinging another service", err, http.StatusForbidden, "M_FORBIDDEN")
		_, err = alice.AppservicePing(ctx, "testbridge", "")
		testserver.WantHTTPError(t, "a user pinging the service", err, http.StatusForbidden, "M_FORBIDDEN")
		// The bridge down: M_CONNECTION_FAILED.
		b.stop()
		_, err = b.as.BotClient().AppservicePing(ctx, "testbridge", "")
		testserver.WantHTTPError(t, "pinging a service that is down", err, http.StatusBadGateway, "M_CONNECTION_FAILED")
	})
}

// TestAppServiceCatchUp: a bridge that was down gets every event in
// order when it returns, and so it does across a restart of Myelin.
func TestAppServiceCatchUp(t *testing.T) {
	eachEngine(t, func(t *testing.T, s *testserver.Server, b *bridge) {
		ctx := context.Background()
		alice := s.Register("alice", "password")
		room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		puppet := b.as.Intent(id.UserID(s.UserID("puppet_1")))
		if err := puppet.EnsureJoined(ctx, room.RoomID); err != nil {
			t.Fatal(err)
		}
		send := func(body string) {
			t.Helper()
			if _, err := alice.SendText(ctx, room.RoomID, body); err != nil {
				t.Fatal(err)
			}
		}
		send("before")
		if got := b.messages(room.RoomID, 1); got[0] != "before" {
			t.Fatalf("got %q", got)
		}

		b.stop()
		var want []string
		for i := range 7 {
			want = append(want, fmt.Sprintf("while down %d", i))
			send(want[i])
		}
		b.start(s.URL)
		if got := b.messages(room.RoomID, len(want)); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("after the bridge returned: %q, want %q", got, want)
		}

		// Down again, events sent, then Myelin restarts before the
		// bridge returns: nothing lost.
		b.stop()
		want = want[:0]
		for i := range 5 {
			want = append(want, fmt.Sprintf("before restart %d", i))
			send(want[i])
		}
		s.Restart()
		s.Repoint(alice)
		b.start(s.URL)
		want = append(want, "after restart")
		send("after restart")
		if got := b.messages(room.RoomID, len(want)); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("across a restart: %q, want %q", got, want)
		}
	})
}

// TestAppServicePuppetFederates: a puppet is a local user like any
// other towards other servers: invited from hs2, it joins hs2's room,
// the bridge gets hs2's events, and hs2 sees the puppet's bridged
// timestamps.
func TestAppServicePuppetFederates(t *testing.T) {
	for _, engine := range testdb.Engines() {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			b := newBridge(t, "hs1.test")
			net := testserver.StartNetwork(t, engine, 2, func(i int, c *config.Config) {
				if i == 0 {
					c.AppServices.Files = []string{b.path}
				}
			})
			hs1, hs2 := net.Servers[0], net.Servers[1]
			b.start(hs1.URL)
			bob := hs2.Register("bob", "password")
			room, err := bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
			if err != nil {
				t.Fatal(err)
			}
			puppet := b.as.Intent(id.UserID(hs1.UserID("puppet_1")))
			if err := puppet.EnsureRegistered(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := bob.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: puppet.UserID}); err != nil {
				t.Fatal(err)
			}
			b.next("the remote invite", func(e *event.Event) bool {
				return e.RoomID == room.RoomID && e.Type == event.StateMember && e.GetStateKey() == string(puppet.UserID) &&
					e.Content.AsMember().Membership == event.MembershipInvite
			})
			if err := puppet.EnsureJoined(ctx, room.RoomID, mas.EnsureJoinedParams{Via: []string{"hs2.test"}}); err != nil {
				t.Fatalf("puppet joining a room on hs2: %v", err)
			}
			if _, err := bob.SendText(ctx, room.RoomID, "hello from hs2"); err != nil {
				t.Fatal(err)
			}
			if got := b.messages(room.RoomID, 1); got[0] != "hello from hs2" {
				t.Fatalf("bridge received %q", got)
			}
			ts := time.Date(2021, 6, 7, 8, 9, 10, 0, time.UTC).UnixMilli()
			sent, err := puppet.SendMessageEvent(ctx, room.RoomID, event.EventMessage,
				&event.MessageEventContent{MsgType: event.MsgText, Body: "bridged"}, mautrix.ReqSendEvent{Timestamp: ts})
			if err != nil {
				t.Fatal(err)
			}
			testserver.SyncUntil(t, bob, "", "the puppet's message on hs2", func(resp *mautrix.RespSync) bool {
				// A sync may come back without the room (another of bob's
				// changes woke it): wait on.
				joined := resp.Rooms.Join[room.RoomID]
				if joined == nil {
					return false
				}
				for _, e := range joined.Timeline.Events {
					if e.ID == sent.EventID {
						if e.Timestamp != ts {
							t.Fatalf("hs2 sees ts %d, want %d", e.Timestamp, ts)
						}
						return true
					}
				}
				return false
			})
		})
	}
}

// TestAppServiceBadRegistrationStopsStart: the error names the file and
// the field.
func TestAppServiceBadRegistrationStopsStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broken.yaml")
	if err := os.WriteFile(path, []byte("id: x\nas_token: a\nhs_token: b\nurl: http://127.0.0.1:1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testserver.Config(t, filepath.Join(t.TempDir(), "myelin.db"))
	cfg.AppServices.Files = []string{path}
	s, err := server.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err == nil {
		s.Shutdown(context.Background())
		t.Fatal("a server started with a registration without sender_localpart")
	}
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "sender_localpart") {
		t.Fatalf("error %q names neither the file nor the field", err)
	}
}

// TestAppServiceRateLimits: a service registered with rate_limited:
// false is not limited; its users' own tokens and other users are.
func TestAppServiceRateLimits(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		b := newBridge(t, "hs1.test")
		s := testserver.Start(t, dbURL, func(c *config.Config) {
			withBridge(b)(c)
			c.RateLimit.Enabled = true
			c.RateLimit.Message.PerSecond, c.RateLimit.Message.Burst = 0.001, 2
			c.RateLimit.Register.PerSecond, c.RateLimit.Register.Burst = 100, 100
		})
		b.start(s.URL)
		alice := s.Register("alice", "password")
		room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		puppet := b.as.Intent(id.UserID(s.UserID("puppet_1")))
		if err := puppet.EnsureJoined(ctx, room.RoomID); err != nil {
			t.Fatal(err)
		}
		for i := range 10 {
			// Raw requests: mautrix's intents would wait out a 429.
			path := fmt.Sprintf("/_matrix/client/v3/rooms/%s/send/m.room.message/t%d?user_id=%s", room.RoomID, i, puppet.UserID)
			status, body := s.Do(t, http.MethodPut, path, b.as.Registration.AppToken, map[string]any{"msgtype": "m.text", "body": fmt.Sprint(i)})
			testserver.WantStatus(t, fmt.Sprintf("puppet message %d", i), status, body, http.StatusOK)
		}
		var limited error
		for i := range 10 {
			if _, limited = alice.SendText(ctx, room.RoomID, fmt.Sprint(i)); limited != nil {
				break
			}
		}
		testserver.WantHTTPError(t, "a normal user past the limit", limited, http.StatusTooManyRequests, "M_LIMIT_EXCEEDED")
	})
}
