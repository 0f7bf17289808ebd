package push_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// gateway is a fake push gateway: it records every /notify body and
// answers with what respond says (a status and rejected pushkeys).
type gateway struct {
	*httptest.Server
	mu      sync.Mutex
	got     []map[string]any
	respond func(n int) (int, []string)
}

func newGateway(t *testing.T) *gateway { return newGatewayOn(t, "127.0.0.1") }

// newGatewayOn starts a fake gateway on a loopback address of its own.
func newGatewayOn(t *testing.T, ip string) *gateway {
	g := &gateway{respond: func(int) (int, []string) { return http.StatusOK, nil }}
	g.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_matrix/push/v1/notify" {
			http.NotFound(w, r)
			return
		}
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		g.mu.Lock()
		g.got = append(g.got, body["notification"].(map[string]any))
		status, rejected := g.respond(len(g.got))
		g.mu.Unlock()
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"rejected": append([]string{}, rejected...)})
	}))
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	g.Listener.Close()
	g.Listener = ln
	g.Start()
	t.Cleanup(g.Close)
	return g
}

func (g *gateway) url() string { return g.URL + "/_matrix/push/v1/notify" }

// wait returns the first n notifications the gateway received.
func (g *gateway) wait(t *testing.T, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		g.mu.Lock()
		got := append([]map[string]any{}, g.got...)
		g.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway got %d notifications, want %d: %v", len(got), n, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func setPusher(t *testing.T, c *mautrix.Client, pushkey string, data map[string]any) {
	t.Helper()
	kind := mautrix.PusherKindHTTP
	err := c.SetPusher(context.Background(), &mautrix.Pusher{AppID: "org.example.app", PushKey: pushkey, Kind: &kind,
		AppDisplayName: "Example", DeviceDisplayName: "Phone", Language: "en", Data: data})
	if err != nil {
		t.Fatal(err)
	}
}

func pushers(t *testing.T, c *mautrix.Client) []mautrix.Pusher {
	t.Helper()
	resp, err := c.GetPushers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Pushers
}

func TestPushDelivery(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		gw := newGateway(t)
		alice, bob, carol := s.Register("alice", "pw-alice-1"), s.Register("bob", "pw-bob-1"), s.Register("carol", "pw-carol-1")
		if err := bob.SetDisplayName(ctx, "Bob B"); err != nil {
			t.Fatal(err)
		}
		room, err := bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Lobby"})
		if err != nil {
			t.Fatal(err)
		}
		join(t, room.RoomID, alice, carol)
		setPusher(t, alice, "alice-key", map[string]any{"url": gw.url(), "custom": "x"})
		setPusher(t, carol, "carol-key", map[string]any{"url": gw.url(), "format": "event_id_only"})
		if ps := pushers(t, alice); len(ps) != 1 || ps[0].PushKey != "alice-key" || ps[0].Data["custom"] != "x" {
			t.Fatalf("pushers: %+v", ps)
		}

		first := send(t, bob, room.RoomID, text("one"))
		// Delivered before the second is sent: a badge counts what is
		// unread when the notification goes out.
		gw.wait(t, 2)
		second := send(t, bob, room.RoomID, map[string]any{"msgtype": "m.text", "body": "two",
			"m.mentions": map[string]any{"user_ids": []string{string(alice.UserID)}}})
		got := gw.wait(t, 4)
		var forAlice, forCarol []map[string]any
		for _, n := range got {
			dev := n["devices"].([]any)[0].(map[string]any)
			if dev["pushkey"] == "alice-key" {
				forAlice = append(forAlice, n)
			} else {
				forCarol = append(forCarol, n)
			}
		}
		if len(forAlice) != 2 || len(forCarol) != 2 {
			t.Fatalf("split: %v", got)
		}
		n := forAlice[0]
		dev := n["devices"].([]any)[0].(map[string]any)
		content := n["content"].(map[string]any)
		if n["event_id"] != string(first) || n["room_id"] != string(room.RoomID) || n["type"] != "m.room.message" ||
			n["sender"] != string(bob.UserID) || n["sender_display_name"] != "Bob B" || n["room_name"] != "Lobby" ||
			n["prio"] != "low" || content["body"] != "one" || n["counts"].(map[string]any)["unread"] != float64(1) {
			t.Fatalf("full notification: %v", n)
		}
		data := dev["data"].(map[string]any)
		if dev["app_id"] != "org.example.app" || data["url"] != nil || data["custom"] != "x" || dev["pushkey_ts"].(float64) <= 0 {
			t.Fatalf("device: %v", dev)
		}
		n = forAlice[1]
		tweaks := n["devices"].([]any)[0].(map[string]any)["tweaks"].(map[string]any)
		if n["event_id"] != string(second) || n["prio"] != "high" || tweaks["highlight"] != true || tweaks["sound"] != "default" ||
			n["counts"].(map[string]any)["unread"] != float64(2) {
			t.Fatalf("mention notification: %v", n)
		}
		n = forCarol[0]
		if n["event_id"] != string(first) || n["room_id"] != string(room.RoomID) || n["type"] != nil || n["sender"] != nil ||
			n["content"] != nil || n["counts"].(map[string]any)["unread"] != float64(1) {
			t.Fatalf("event_id_only notification: %v", n)
		}
		if data := n["devices"].([]any)[0].(map[string]any)["data"].(map[string]any); data["format"] != "event_id_only" {
			t.Fatalf("event_id_only data: %v", data)
		}

		// A failing gateway is retried after a back-off.
		gw.mu.Lock()
		base := len(gw.got)
		gw.respond = func(n int) (int, []string) {
			if n == base+1 {
				return http.StatusBadGateway, nil
			}
			return http.StatusOK, nil
		}
		gw.mu.Unlock()
		third := send(t, bob, room.RoomID, text("three"))
		got = gw.wait(t, base+3)
		retried := 0
		for _, n := range got[base:] {
			if n["event_id"] == string(third) {
				retried++
			}
		}
		if retried != 3 { // one failure, then alice's and carol's deliveries
			t.Fatalf("retry: %d deliveries of the third event in %v", retried, got[base:])
		}

		// A rejected pushkey removes the pusher.
		gw.mu.Lock()
		base = len(gw.got)
		gw.respond = func(int) (int, []string) { return http.StatusOK, []string{"carol-key"} }
		gw.mu.Unlock()
		send(t, bob, room.RoomID, text("four"))
		gw.wait(t, base+2)
		deadline := time.Now().Add(10 * time.Second)
		for len(pushers(t, carol)) != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("rejected pusher still there: %+v", pushers(t, carol))
			}
			time.Sleep(20 * time.Millisecond)
		}
		if len(pushers(t, alice)) != 1 {
			t.Fatal("alice's pusher went too")
		}
	})
}

func TestPusherSetAndLogout(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice, bob := s.Register("alice", "pw-alice-1"), s.Register("bob", "pw-bob-1")
		const url = "https://push.example.org/_matrix/push/v1/notify"
		set := func(c *mautrix.Client, body map[string]any) (int, map[string]any) {
			return s.Do(t, http.MethodPost, "/_matrix/client/v3/pushers/set", c.AccessToken, body)
		}
		full := func(extra map[string]any) map[string]any {
			b := map[string]any{"kind": "http", "app_id": "org.example.app", "pushkey": "k1", "app_display_name": "A",
				"device_display_name": "D", "lang": "en", "data": map[string]any{"url": url}}
			for k, v := range extra {
				b[k] = v
			}
			return b
		}
		status, body := set(alice, map[string]any{"kind": "http", "app_id": "a"})
		testserver.WantError(t, "no pushkey", status, body, http.StatusBadRequest, "M_MISSING_PARAM")
		status, body = set(alice, map[string]any{"kind": "http", "app_id": "a", "pushkey": "k"})
		testserver.WantError(t, "no lang/data", status, body, http.StatusBadRequest, "M_MISSING_PARAM")
		status, body = set(alice, full(map[string]any{"data": map[string]any{"url": "https://push.example.org/notify"}}))
		testserver.WantError(t, "wrong path", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		status, body = set(alice, full(map[string]any{"data": map[string]any{}}))
		testserver.WantError(t, "no url", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		status, body = set(alice, full(map[string]any{"kind": "email", "app_id": "m.email"}))
		testserver.WantError(t, "email", status, body, http.StatusBadRequest, "M_INVALID_PARAM")

		// Same app_id and pushkey: replaced in place; another user taking
		// it without append removes alice's; with append both keep it.
		status, body = set(alice, full(nil))
		testserver.WantStatus(t, "set", status, body, http.StatusOK)
		status, body = set(alice, full(map[string]any{"lang": "fr"}))
		testserver.WantStatus(t, "update", status, body, http.StatusOK)
		if ps := pushers(t, alice); len(ps) != 1 || ps[0].Language != "fr" {
			t.Fatalf("updated: %+v", ps)
		}
		status, body = set(bob, full(map[string]any{"append": true}))
		testserver.WantStatus(t, "append", status, body, http.StatusOK)
		if len(pushers(t, alice)) != 1 {
			t.Fatal("append removed alice's pusher")
		}
		status, body = set(bob, full(nil))
		testserver.WantStatus(t, "take over", status, body, http.StatusOK)
		if len(pushers(t, alice)) != 0 || len(pushers(t, bob)) != 1 {
			t.Fatalf("take over: alice %v bob %v", pushers(t, alice), pushers(t, bob))
		}
		status, body = set(bob, map[string]any{"kind": nil, "app_id": "org.example.app", "pushkey": "k1"})
		testserver.WantStatus(t, "delete", status, body, http.StatusOK)
		if len(pushers(t, bob)) != 0 {
			t.Fatal("kind null did not delete")
		}

		// A pusher goes with the device that set it.
		phone := s.Client()
		resp, err := phone.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword,
			Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"}, Password: "pw-alice-1", StoreCredentials: true})
		if err != nil || resp.UserID != alice.UserID {
			t.Fatalf("login: %v", err)
		}
		status, body = set(phone, full(nil))
		testserver.WantStatus(t, "phone pusher", status, body, http.StatusOK)
		if len(pushers(t, alice)) != 1 {
			t.Fatal("pusher not listed for the user's other device")
		}
		if _, err := phone.Logout(ctx); err != nil {
			t.Fatal(err)
		}
		if ps := pushers(t, alice); len(ps) != 0 {
			t.Fatalf("pusher survived logout: %+v", ps)
		}
	})
}

// TestBadgeOnRead checks that reading (a receipt) sends the user's
// pushers a badge update: only counts and devices, as the push gateway
// spec allows for badge-only notifications.
func TestBadgeOnRead(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		gw := newGateway(t)
		alice, bob := s.Register("alice", "pw-alice-1"), s.Register("bob", "pw-bob-1")
		room := publicRoom(t, bob, alice)
		setPusher(t, alice, "alice-key", map[string]any{"url": gw.url()})
		send(t, bob, room, text("one"))
		last := send(t, bob, room, text("two"))
		got := gw.wait(t, 2)
		if got[1]["counts"].(map[string]any)["unread"] != float64(2) {
			t.Fatalf("before reading: %v", got[1])
		}
		if err := alice.SendReceipt(ctx, room, last, "m.read", nil); err != nil {
			t.Fatal(err)
		}
		got = gw.wait(t, 3)
		n := got[2]
		dev := n["devices"].([]any)[0].(map[string]any)
		if len(n) != 2 || n["counts"].(map[string]any)["unread"] != float64(0) ||
			dev["pushkey"] != "alice-key" || dev["app_id"] != "org.example.app" || dev["tweaks"] != nil {
			t.Fatalf("badge update: %v", n)
		}
		// A receipt that reads nothing new sends nothing.
		if err := alice.SendReceipt(ctx, room, last, "m.read", nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		gw.mu.Lock()
		defer gw.mu.Unlock()
		if len(gw.got) != 3 {
			t.Fatalf("gateway got %d notifications after a repeated receipt, want 3: %v", len(gw.got), gw.got[3:])
		}
	})
}

// TestPushGatewayOutboundPolicy: a pusher's URL is the user's choice, so
// delivery goes through the outbound policy: a gateway on a refused
// address (127.0.0.1, off the allow list) gets nothing, while one on an
// allowed address (127.0.0.2) gets the same notification.
func TestPushGatewayOutboundPolicy(t *testing.T) {
	testserver.EachEngine(t, func(c *config.Config) { c.Outbound.Allow = []string{"127.0.0.2/32"} }, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		refused, allowed := newGatewayOn(t, "127.0.0.1"), newGatewayOn(t, "127.0.0.2")
		alice, bob := s.Register("alice", "pw-alice-1"), s.Register("bob", "pw-bob-1")
		room, err := bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		join(t, room.RoomID, alice)
		setPusher(t, alice, "refused-key", map[string]any{"url": refused.url()})
		setPusher(t, alice, "allowed-key", map[string]any{"url": allowed.url()})
		send(t, bob, room.RoomID, text("hello"))
		allowed.wait(t, 1)
		time.Sleep(300 * time.Millisecond)
		refused.mu.Lock()
		defer refused.mu.Unlock()
		if len(refused.got) != 0 {
			t.Fatalf("a gateway on a refused address got %d notifications", len(refused.got))
		}
	})
}
