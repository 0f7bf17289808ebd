package admin_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testserver"
)

var txnSeq atomic.Int64

// userToken creates a user through the admin API and logs them in.
func userToken(t *testing.T, s *testserver.Server, admin, lp, password string) string {
	t.Helper()
	putUser(t, s, admin, lp, map[string]any{"password": password}, http.StatusCreated)
	status, body := login(t, s, lp, password)
	testserver.WantStatus(t, "login "+lp, status, body, http.StatusOK)
	return body["access_token"].(string)
}

func publicRoom(t *testing.T, s *testserver.Server, token string) string {
	t.Helper()
	status, body := s.Do(t, "POST", "/_matrix/client/v3/createRoom", token, map[string]any{"preset": "public_chat"})
	testserver.WantStatus(t, "createRoom", status, body, http.StatusOK)
	return body["room_id"].(string)
}

func joinRoom(t *testing.T, s *testserver.Server, token, roomID string) {
	t.Helper()
	status, body := s.Do(t, "POST", "/_matrix/client/v3/join/"+url.PathEscape(roomID), token, map[string]any{})
	testserver.WantStatus(t, "join", status, body, http.StatusOK)
}

func sendText(t *testing.T, s *testserver.Server, token, roomID, text string) (int, map[string]any) {
	t.Helper()
	return s.Do(t, "PUT", fmt.Sprintf("/_matrix/client/v3/rooms/%s/send/m.room.message/t%d", url.PathEscape(roomID), txnSeq.Add(1)),
		token, map[string]any{"msgtype": "m.text", "body": text})
}

// texts are the message bodies a user reads in a room, oldest first.
func texts(t *testing.T, s *testserver.Server, token, roomID string) []string {
	t.Helper()
	status, body := s.Do(t, "GET", "/_matrix/client/v3/rooms/"+url.PathEscape(roomID)+"/messages?dir=b&limit=100", token, nil)
	testserver.WantStatus(t, "messages", status, body, http.StatusOK)
	var out []string
	for _, e := range body["chunk"].([]any) {
		ev := e.(map[string]any)
		if ev["type"] == "m.room.message" {
			content, _ := ev["content"].(map[string]any)
			b, _ := content["body"].(string)
			out = append(out, b)
		}
	}
	slices.Reverse(out)
	return out
}

// TestAdminShadowBan covers POST/DELETE /_synapse/admin/v1/users/{userId}/shadow_ban.
func TestAdminShadowBan(t *testing.T) {
	testserver.EachEngine(t, withSecret, func(t *testing.T, s *testserver.Server) {
		admin := s.RegisterAdmin("root", "root password").AccessToken
		alice := userToken(t, s, admin, "alice", "alice pw")
		bob := userToken(t, s, admin, "bob", "bob pw")
		room := publicRoom(t, s, alice)
		joinRoom(t, s, bob, room)

		status, body := s.Do(t, "POST", adminUserPath(s, "bob", "/shadow_ban"), admin, nil)
		testserver.WantStatus(t, "shadow-ban bob", status, body, http.StatusOK)
		status, body = s.Do(t, "GET", admV2Users+"/"+url.PathEscape(s.UserID("bob")), admin, nil)
		if body["shadow_banned"] != true {
			t.Fatalf("bob not shadow_banned: %v", body)
		}

		status, body = sendText(t, s, bob, room, "hidden")
		testserver.WantStatus(t, "shadow-banned send", status, body, http.StatusOK)
		fake, _ := body["event_id"].(string)
		if !strings.HasPrefix(fake, "$") {
			t.Fatalf("no event ID for the shadow-banned send: %v", body)
		}
		status, body = s.Do(t, "PUT", "/_matrix/client/v3/rooms/"+url.PathEscape(room)+"/state/m.room.topic/", bob, map[string]any{"topic": "hidden topic"})
		testserver.WantStatus(t, "shadow-banned state", status, body, http.StatusOK)
		if id, _ := body["event_id"].(string); !strings.HasPrefix(id, "$") {
			t.Fatalf("no event ID for the shadow-banned state: %v", body)
		}
		userToken(t, s, admin, "carol", "carol pw")
		// In a room of bob's own, where he may invite.
		bobRoom := publicRoom(t, s, bob)
		status, body = s.Do(t, "POST", "/_matrix/client/v3/rooms/"+url.PathEscape(bobRoom)+"/invite", bob, map[string]any{"user_id": s.UserID("carol")})
		testserver.WantStatus(t, "shadow-banned invite", status, body, http.StatusOK)
		status, body = s.Do(t, "GET", adminUserPath(s, "carol", "/memberships"), admin, nil)
		if ms, _ := body["memberships"].(map[string]any); len(ms) != 0 {
			t.Fatalf("the shadow-banned invite reached carol: %v", body)
		}
		status, body = s.Do(t, "POST", "/_matrix/client/v3/createRoom", bob, map[string]any{"invite": []string{s.UserID("carol")}})
		testserver.WantStatus(t, "shadow-banned createRoom with invitees", status, body, http.StatusOK)
		if id, _ := body["room_id"].(string); !strings.HasPrefix(id, "!") {
			t.Fatalf("no room ID: %v", body)
		}
		status, body = s.Do(t, "GET", adminUserPath(s, "carol", "/memberships"), admin, nil)
		if ms, _ := body["memberships"].(map[string]any); len(ms) != 0 {
			t.Fatalf("the shadow-banned createRoom invited carol: %v", body)
		}
		status, body = sendText(t, s, alice, room, "after")
		testserver.WantStatus(t, "alice sends", status, body, http.StatusOK)
		if got := texts(t, s, alice, room); !slices.Equal(got, []string{"after"}) {
			t.Fatalf("alice reads %v, want only [after]", got)
		}
		if got := texts(t, s, bob, room); slices.Contains(got, "hidden") {
			t.Fatalf("the shadow-banned message was stored: bob reads %v", got)
		}
		status, body = s.Do(t, "GET", "/_matrix/client/v3/rooms/"+url.PathEscape(room)+"/event/"+url.PathEscape(fake), alice, nil)
		testserver.WantError(t, "the fake event", status, body, http.StatusNotFound, "M_NOT_FOUND")
		status, body = s.Do(t, "GET", "/_matrix/client/v3/rooms/"+url.PathEscape(room)+"/state/m.room.topic/", alice, nil)
		if status == http.StatusOK && body["topic"] == "hidden topic" {
			t.Fatalf("the shadow-banned topic was set: %v", body)
		}

		status, body = s.Do(t, "DELETE", adminUserPath(s, "bob", "/shadow_ban"), admin, nil)
		testserver.WantStatus(t, "lift the shadow-ban", status, body, http.StatusOK)
		status, body = sendText(t, s, bob, room, "shown")
		testserver.WantStatus(t, "bob sends", status, body, http.StatusOK)
		if got := texts(t, s, alice, room); !slices.Equal(got, []string{"after", "shown"}) {
			t.Fatalf("alice reads %v, want [after shown]", got)
		}

		status, body = s.Do(t, "POST", admBase+"/users/"+url.PathEscape("@x:elsewhere.test")+"/shadow_ban", admin, nil)
		testserver.WantError(t, "remote", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		status, body = s.Do(t, "POST", adminUserPath(s, "nobody", "/shadow_ban"), admin, nil)
		testserver.WantError(t, "unknown", status, body, http.StatusNotFound, "M_NOT_FOUND")
	})
}

// TestAdminOverrideRatelimit covers .../override_ratelimit and that the
// rate limiter honours it.
func TestAdminOverrideRatelimit(t *testing.T) {
	limited := func(c *config.Config) {
		withSecret(c)
		c.RateLimit.Enabled = true
		// Refilling once in 1000 s: a test's sends never earn a token back.
		c.RateLimit.Message = config.RateLimitBucket{PerSecond: 0.001, Burst: 2}
	}
	testserver.EachEngine(t, limited, func(t *testing.T, s *testserver.Server) {
		admin := s.RegisterAdmin("root", "root password").AccessToken
		bob := userToken(t, s, admin, "bob", "bob pw")
		carol := userToken(t, s, admin, "carol", "carol pw")
		room := publicRoom(t, s, bob)
		joinRoom(t, s, carol, room)

		for i := range 2 {
			status, body := sendText(t, s, bob, room, fmt.Sprint(i))
			testserver.WantStatus(t, "bob within the burst", status, body, http.StatusOK)
		}
		status, body := sendText(t, s, bob, room, "too many")
		testserver.WantError(t, "bob over the burst", status, body, http.StatusTooManyRequests, "M_LIMIT_EXCEEDED")

		status, body = s.Do(t, "GET", adminUserPath(s, "bob", "/override_ratelimit"), admin, nil)
		testserver.WantStatus(t, "no override", status, body, http.StatusOK)
		if len(body) != 0 {
			t.Fatalf("override before any: %v", body)
		}
		status, body = s.Do(t, "POST", adminUserPath(s, "bob", "/override_ratelimit"), admin, map[string]any{})
		testserver.WantStatus(t, "override bob", status, body, http.StatusOK)
		if body["messages_per_second"] != float64(0) || body["burst_count"] != float64(0) {
			t.Fatalf("override answer: %v", body)
		}
		for i := range 5 {
			status, body := sendText(t, s, bob, room, fmt.Sprint("free ", i))
			testserver.WantStatus(t, "bob exempt", status, body, http.StatusOK)
		}
		status, body = s.Do(t, "GET", adminUserPath(s, "bob", "/override_ratelimit"), admin, nil)
		if body["messages_per_second"] != float64(0) || body["burst_count"] != float64(0) {
			t.Fatalf("override read back: %v", body)
		}

		// A larger burst than everyone's.
		status, body = s.Do(t, "POST", adminUserPath(s, "carol", "/override_ratelimit"), admin, map[string]any{"messages_per_second": 1, "burst_count": 5})
		testserver.WantStatus(t, "override carol", status, body, http.StatusOK)
		for i := range 5 {
			status, body := sendText(t, s, carol, room, fmt.Sprint("carol ", i))
			testserver.WantStatus(t, "carol within her burst", status, body, http.StatusOK)
		}

		status, body = s.Do(t, "DELETE", adminUserPath(s, "bob", "/override_ratelimit"), admin, nil)
		testserver.WantStatus(t, "delete override", status, body, http.StatusOK)
		status, body = sendText(t, s, bob, room, "limited again")
		testserver.WantError(t, "bob limited again", status, body, http.StatusTooManyRequests, "M_LIMIT_EXCEEDED")
		status, body = s.Do(t, "GET", adminUserPath(s, "bob", "/override_ratelimit"), admin, nil)
		if len(body) != 0 {
			t.Fatalf("override after delete: %v", body)
		}

		for _, bad := range []any{map[string]any{"messages_per_second": -1}, map[string]any{"burst_count": "x"}, map[string]any{"burst_count": 1.5}} {
			status, body := s.Do(t, "POST", adminUserPath(s, "bob", "/override_ratelimit"), admin, bad)
			testserver.WantError(t, fmt.Sprint(bad), status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		}
		status, body = s.Do(t, "GET", adminUserPath(s, "nobody", "/override_ratelimit"), admin, nil)
		testserver.WantError(t, "unknown", status, body, http.StatusNotFound, "M_NOT_FOUND")
	})
}

// TestAdminDeactivateErase covers POST /_synapse/admin/v1/deactivate/{userId}.
func TestAdminDeactivateErase(t *testing.T) {
	testserver.EachEngine(t, withSecret, func(t *testing.T, s *testserver.Server) {
		admin := s.RegisterAdmin("root", "root password").AccessToken
		alice := userToken(t, s, admin, "alice", "alice pw")
		bob := userToken(t, s, admin, "bob", "bob pw")
		putUser(t, s, admin, "bob", map[string]any{"displayname": "Bob B", "avatar_url": "mxc://hs1.test/bob"}, http.StatusOK)
		room := publicRoom(t, s, alice)
		joinRoom(t, s, bob, room)

		for _, bad := range []any{map[string]any{"erase": "yes"}, "{"} {
			status, body := s.Do(t, "POST", admBase+"/deactivate/"+url.PathEscape(s.UserID("bob")), admin, bad)
			testserver.WantStatus(t, fmt.Sprint("deactivate ", bad), status, body, http.StatusBadRequest)
		}
		status, body := s.Do(t, "POST", admBase+"/deactivate/"+url.PathEscape(s.UserID("bob")), admin, map[string]any{"erase": true})
		testserver.WantStatus(t, "deactivate bob", status, body, http.StatusOK)
		if body["id_server_unbind_result"] != "success" {
			t.Fatalf("deactivate answer: %v", body)
		}
		status, body = s.Do(t, "GET", admV2Users+"/"+url.PathEscape(s.UserID("bob")), admin, nil)
		testserver.WantStatus(t, "GET bob", status, body, http.StatusOK)
		if body["deactivated"] != true || body["erased"] != true || body["displayname"] != nil || body["avatar_url"] != nil {
			t.Fatalf("bob after erase: %v", body)
		}
		status, body = s.Do(t, "GET", "/_matrix/client/v3/account/whoami", bob, nil)
		testserver.WantError(t, "bob's token", status, body, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
		status, body = login(t, s, "bob", "bob pw")
		testserver.WantStatus(t, "bob login", status, body, http.StatusForbidden)
		status, body = s.Do(t, "GET", "/_matrix/client/v3/rooms/"+url.PathEscape(room)+"/joined_members", alice, nil)
		testserver.WantStatus(t, "joined members", status, body, http.StatusOK)
		if _, in := body["joined"].(map[string]any)[s.UserID("bob")]; in {
			t.Fatalf("bob still joined: %v", body)
		}
		status, body = s.Do(t, "GET", adminUserPath(s, "bob", "/joined_rooms"), admin, nil)
		if body["total"] != float64(0) {
			t.Fatalf("bob's joined rooms: %v", body)
		}
		// Without erase, the profile stays.
		userToken(t, s, admin, "carol", "carol pw")
		putUser(t, s, admin, "carol", map[string]any{"displayname": "Carol"}, http.StatusOK)
		status, body = s.Do(t, "POST", admBase+"/deactivate/"+url.PathEscape(s.UserID("carol")), admin, nil)
		testserver.WantStatus(t, "deactivate carol", status, body, http.StatusOK)
		status, body = s.Do(t, "GET", admV2Users+"/"+url.PathEscape(s.UserID("carol")), admin, nil)
		if body["deactivated"] != true || body["erased"] != false || body["displayname"] != "Carol" {
			t.Fatalf("carol after deactivation: %v", body)
		}
		status, body = s.Do(t, "POST", admBase+"/deactivate/"+url.PathEscape("@x:elsewhere.test"), admin, nil)
		testserver.WantError(t, "remote", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		status, body = s.Do(t, "POST", admBase+"/deactivate/"+url.PathEscape(s.UserID("nobody")), admin, nil)
		testserver.WantError(t, "unknown", status, body, http.StatusNotFound, "M_NOT_FOUND")
	})
}

// TestAdminUserSessions covers devices, whois, joined_rooms, pushers,
// account data, the admin flag, username_available and reset_password.
func TestAdminUserSessions(t *testing.T) {
	testserver.EachEngine(t, withSecret, func(t *testing.T, s *testserver.Server) {
		admin := s.RegisterAdmin("root", "root password").AccessToken
		bob1 := userToken(t, s, admin, "bob", "bob pw")
		status, body := login(t, s, "bob", "bob pw")
		testserver.WantStatus(t, "second login", status, body, http.StatusOK)
		bob2, dev2 := body["access_token"].(string), body["device_id"].(string)
		v2dev := "/_synapse/admin/v2/users/" + url.PathEscape(s.UserID("bob")) + "/devices"

		status, body = s.Do(t, "GET", v2dev, admin, nil)
		testserver.WantStatus(t, "devices", status, body, http.StatusOK)
		if body["total"] != float64(2) {
			t.Fatalf("devices: %v", body)
		}
		d := body["devices"].([]any)[0].(map[string]any)
		if d["user_id"] != s.UserID("bob") || d["last_seen_ip"] != "127.0.0.1" || d["last_seen_ts"] == nil {
			t.Fatalf("device: %v", d)
		}
		status, body = s.Do(t, "GET", admBase+"/whois/"+url.PathEscape(s.UserID("bob")), admin, nil)
		testserver.WantStatus(t, "whois", status, body, http.StatusOK)
		devs, _ := body["devices"].(map[string]any)
		if body["user_id"] != s.UserID("bob") || len(devs) != 2 || devs[dev2] == nil {
			t.Fatalf("whois: %v", body)
		}
		conn := devs[dev2].(map[string]any)["sessions"].([]any)[0].(map[string]any)["connections"].([]any)[0].(map[string]any)
		if conn["ip"] != "127.0.0.1" || conn["last_seen"] == nil {
			t.Fatalf("whois connection: %v", conn)
		}
		status, body = s.Do(t, "GET", "/_matrix/client/v3/admin/whois/"+url.PathEscape(s.UserID("bob")), admin, nil)
		testserver.WantStatus(t, "client whois", status, body, http.StatusOK)

		status, body = s.Do(t, "PUT", v2dev+"/"+dev2, admin, map[string]any{"display_name": "Bob's phone"})
		testserver.WantStatus(t, "rename", status, body, http.StatusOK)
		status, body = s.Do(t, "GET", v2dev+"/"+dev2, admin, nil)
		if body["display_name"] != "Bob's phone" || body["device_id"] != dev2 {
			t.Fatalf("renamed device: %v", body)
		}
		status, body = s.Do(t, "GET", v2dev+"/NOPE", admin, nil)
		testserver.WantError(t, "unknown device", status, body, http.StatusNotFound, "M_NOT_FOUND")
		status, body = s.Do(t, "DELETE", v2dev+"/"+dev2, admin, nil)
		testserver.WantStatus(t, "delete device", status, body, http.StatusOK)
		status, body = s.Do(t, "GET", "/_matrix/client/v3/account/whoami", bob2, nil)
		testserver.WantError(t, "deleted device's token", status, body, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")

		// joined_rooms, pushers, account data.
		room := publicRoom(t, s, bob1)
		status, body = s.Do(t, "GET", adminUserPath(s, "bob", "/joined_rooms"), admin, nil)
		if rooms, _ := body["joined_rooms"].([]any); body["total"] != float64(1) || len(rooms) != 1 || rooms[0] != room {
			t.Fatalf("joined_rooms: %v", body)
		}
		other := publicRoom(t, s, admin)
		joinRoom(t, s, bob1, other)
		status, body = s.Do(t, "POST", "/_matrix/client/v3/rooms/"+url.PathEscape(other)+"/leave", bob1, map[string]any{})
		testserver.WantStatus(t, "leave", status, body, http.StatusOK)
		status, body = s.Do(t, "GET", adminUserPath(s, "bob", "/memberships"), admin, nil)
		testserver.WantStatus(t, "memberships", status, body, http.StatusOK)
		if ms, _ := body["memberships"].(map[string]any); len(ms) != 2 || ms[room] != "join" || ms[other] != "leave" {
			t.Fatalf("memberships: %v", body)
		}
		feat := admBase + "/experimental_features/" + url.PathEscape(s.UserID("bob"))
		status, body = s.Do(t, "GET", feat, admin, nil)
		if status != http.StatusOK || fmt.Sprint(body["features"]) != "map[]" {
			t.Fatalf("features: %d %v", status, body)
		}
		status, body = s.Do(t, "PUT", feat, admin, map[string]any{"features": map[string]bool{"msc3881": true}})
		testserver.WantError(t, "unknown feature", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		status, body = s.Do(t, "PUT", feat, admin, map[string]any{"features": map[string]bool{}})
		testserver.WantStatus(t, "no features", status, body, http.StatusOK)
		status, body = s.Do(t, "POST", "/_matrix/client/v3/pushers/set", bob1, map[string]any{"kind": "http", "app_id": "org.example.app",
			"pushkey": "pk1", "app_display_name": "App", "device_display_name": "Phone", "lang": "en",
			"data": map[string]any{"url": "http://127.0.0.1:9/_matrix/push/v1/notify"}})
		testserver.WantStatus(t, "set pusher", status, body, http.StatusOK)
		status, body = s.Do(t, "GET", adminUserPath(s, "bob", "/pushers"), admin, nil)
		ps, _ := body["pushers"].([]any)
		if body["total"] != float64(1) || len(ps) != 1 || ps[0].(map[string]any)["pushkey"] != "pk1" {
			t.Fatalf("pushers: %v", body)
		}
		status, body = s.Do(t, "PUT", "/_matrix/client/v3/user/"+url.PathEscape(s.UserID("bob"))+"/account_data/org.example.g", bob1, map[string]any{"a": 1})
		testserver.WantStatus(t, "global account data", status, body, http.StatusOK)
		status, body = s.Do(t, "PUT", "/_matrix/client/v3/user/"+url.PathEscape(s.UserID("bob"))+"/rooms/"+url.PathEscape(room)+"/account_data/org.example.r", bob1, map[string]any{"b": 2})
		testserver.WantStatus(t, "room account data", status, body, http.StatusOK)
		status, body = s.Do(t, "GET", adminUserPath(s, "bob", "/accountdata"), admin, nil)
		testserver.WantStatus(t, "accountdata", status, body, http.StatusOK)
		ad, _ := body["account_data"].(map[string]any)
		g, _ := ad["global"].(map[string]any)
		rs, _ := ad["rooms"].(map[string]any)
		if fmt.Sprint(g["org.example.g"]) != "map[a:1]" || fmt.Sprint(rs[room]) != "map[org.example.r:map[b:2]]" {
			t.Fatalf("accountdata: %v", body)
		}

		// Admin flag.
		status, body = s.Do(t, "GET", adminUserPath(s, "bob", "/admin"), admin, nil)
		if body["admin"] != false {
			t.Fatalf("bob admin: %v", body)
		}
		status, body = s.Do(t, "PUT", adminUserPath(s, "bob", "/admin"), admin, map[string]any{"admin": true})
		testserver.WantStatus(t, "make bob admin", status, body, http.StatusOK)
		status, body = s.Do(t, "GET", admV2Users, bob1, nil)
		testserver.WantStatus(t, "bob lists users", status, body, http.StatusOK)
		status, body = s.Do(t, "PUT", adminUserPath(s, "bob", "/admin"), bob1, map[string]any{"admin": false})
		testserver.WantError(t, "self-demotion", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		status, body = s.Do(t, "PUT", adminUserPath(s, "bob", "/admin"), admin, map[string]any{})
		testserver.WantError(t, "no admin field", status, body, http.StatusBadRequest, "M_MISSING_PARAM")
		status, body = s.Do(t, "PUT", adminUserPath(s, "bob", "/admin"), admin, map[string]any{"admin": false})
		testserver.WantStatus(t, "demote bob", status, body, http.StatusOK)
		status, body = s.Do(t, "GET", admV2Users, bob1, nil)
		testserver.WantError(t, "bob demoted", status, body, http.StatusForbidden, "M_FORBIDDEN")

		// username_available.
		for _, c := range []struct {
			name, code string
		}{{"bob", "M_USER_IN_USE"}, {"Bad!", "M_INVALID_USERNAME"}, {"", "M_MISSING_PARAM"}} {
			status, body := s.Do(t, "GET", admBase+"/username_available?username="+url.QueryEscape(c.name), admin, nil)
			testserver.WantError(t, "username "+c.name, status, body, http.StatusBadRequest, c.code)
		}
		status, body = s.Do(t, "GET", admBase+"/username_available?username=fresh", admin, nil)
		if status != http.StatusOK || body["available"] != true {
			t.Fatalf("fresh: %d %v", status, body)
		}

		// reset_password logs the devices out by default.
		reset := admBase + "/reset_password/" + url.PathEscape(s.UserID("bob"))
		status, body = s.Do(t, "POST", reset, admin, map[string]any{})
		testserver.WantError(t, "no new_password", status, body, http.StatusBadRequest, "M_MISSING_PARAM")
		status, body = s.Do(t, "POST", reset, admin, map[string]any{"new_password": 7})
		testserver.WantError(t, "bad new_password", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		status, body = s.Do(t, "POST", reset, admin, map[string]any{"new_password": "bob new pw"})
		testserver.WantStatus(t, "reset", status, body, http.StatusOK)
		status, body = s.Do(t, "GET", "/_matrix/client/v3/account/whoami", bob1, nil)
		testserver.WantError(t, "bob's token after reset", status, body, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
		status, body = login(t, s, "bob", "bob pw")
		testserver.WantError(t, "old password", status, body, http.StatusForbidden, "M_FORBIDDEN")
		status, body = login(t, s, "bob", "bob new pw")
		testserver.WantStatus(t, "new password", status, body, http.StatusOK)
		bob3 := body["access_token"].(string)

		// delete_devices.
		status, body = s.Do(t, "POST", "/_synapse/admin/v2/users/"+url.PathEscape(s.UserID("bob"))+"/delete_devices", admin, map[string]any{"devices": []string{body["device_id"].(string), "UNKNOWN"}})
		testserver.WantStatus(t, "delete_devices", status, body, http.StatusOK)
		status, body = s.Do(t, "GET", "/_matrix/client/v3/account/whoami", bob3, nil)
		testserver.WantError(t, "token after delete_devices", status, body, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
		status, body = s.Do(t, "GET", v2dev, admin, nil)
		if body["total"] != float64(0) {
			t.Fatalf("devices left: %v", body)
		}
		status, body = s.Do(t, "POST", "/_synapse/admin/v2/users/"+url.PathEscape(s.UserID("bob"))+"/delete_devices", admin, map[string]any{})
		testserver.WantError(t, "delete_devices without devices", status, body, http.StatusBadRequest, "M_MISSING_PARAM")
	})
}

// TestAdminUserMedia covers GET and DELETE /_synapse/admin/v1/users/{userId}/media.
func TestAdminUserMedia(t *testing.T) {
	testserver.EachEngine(t, withSecret, func(t *testing.T, s *testserver.Server) {
		admin := s.RegisterAdmin("root", "root password").AccessToken
		bob := userToken(t, s, admin, "bob", "bob pw")
		var ids []string
		for _, body := range []string{"medium size", "s", "the largest upload of all"} {
			r := testserver.Send(t, nil, "POST", s.URL+"/_matrix/media/v3/upload?filename=f.txt", bob, body, "Content-Type", "text/plain")
			if r.Status != http.StatusOK {
				t.Fatalf("upload: %d %s", r.Status, r.Raw)
			}
			uri, _ := r.JSON["content_uri"].(string)
			ids = append(ids, uri[strings.LastIndex(uri, "/")+1:])
		}
		mediaIDs := func(body map[string]any) []string {
			var out []string
			for _, m := range body["media"].([]any) {
				out = append(out, m.(map[string]any)["media_id"].(string))
			}
			return out
		}
		path := adminUserPath(s, "bob", "/media")
		status, body := s.Do(t, "GET", path+"?order_by=media_length", admin, nil)
		testserver.WantStatus(t, "media", status, body, http.StatusOK)
		if got := mediaIDs(body); body["total"] != float64(3) || !slices.Equal(got, []string{ids[1], ids[0], ids[2]}) {
			t.Fatalf("media by size: %v, want %v", body, []string{ids[1], ids[0], ids[2]})
		}
		m := body["media"].([]any)[0].(map[string]any)
		if m["media_length"] != float64(1) || m["media_type"] != "text/plain" || m["upload_name"] != "f.txt" || m["created_ts"] == nil {
			t.Fatalf("media entry: %v", m)
		}
		status, body = s.Do(t, "GET", path+"?order_by=media_length&dir=b&limit=2", admin, nil)
		if got := mediaIDs(body); !slices.Equal(got, []string{ids[2], ids[0]}) || body["next_token"] != float64(2) {
			t.Fatalf("media page: %v", body)
		}
		status, body = s.Do(t, "GET", path+"?order_by=media_length&dir=b&limit=2&from=2", admin, nil)
		if got := mediaIDs(body); !slices.Equal(got, []string{ids[1]}) || body["next_token"] != nil {
			t.Fatalf("media last page: %v", body)
		}
		for _, q := range []string{"?order_by=owner", "?dir=x", "?from=-2"} {
			status, body := s.Do(t, "GET", path+q, admin, nil)
			testserver.WantError(t, q, status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		}

		status, body = s.Do(t, "DELETE", path+"?order_by=media_length&limit=1", admin, nil)
		testserver.WantStatus(t, "delete media", status, body, http.StatusOK)
		if del, _ := body["deleted_media"].([]any); body["total"] != float64(1) || len(del) != 1 || del[0] != ids[1] {
			t.Fatalf("deleted: %v", body)
		}
		r := testserver.Send(t, nil, "GET", s.URL+"/_matrix/client/v1/media/download/hs1.test/"+ids[1], bob, nil)
		if r.Status != http.StatusNotFound {
			t.Fatalf("deleted media still served: %d", r.Status)
		}
		r = testserver.Send(t, nil, "GET", s.URL+"/_matrix/client/v1/media/download/hs1.test/"+ids[0], bob, nil)
		if r.Status != http.StatusOK || string(r.Raw) != "medium size" {
			t.Fatalf("kept media: %d %q", r.Status, r.Raw)
		}
		status, body = s.Do(t, "GET", path, admin, nil)
		if body["total"] != float64(2) {
			t.Fatalf("after delete: %v", body)
		}
		status, body = s.Do(t, "GET", adminUserPath(s, "nobody", "/media"), admin, nil)
		testserver.WantError(t, "unknown", status, body, http.StatusNotFound, "M_NOT_FOUND")
	})
}

// TestAdminEraseRedactsForLaterJoiners: once a user is erased, their
// events reach users who were not joined when they were sent redacted;
// those who were joined still read them (Synapse's behaviour).
func TestAdminEraseRedactsForLaterJoiners(t *testing.T) {
	testserver.EachEngine(t, withSecret, func(t *testing.T, s *testserver.Server) {
		admin := s.RegisterAdmin("root", "root password").AccessToken
		alice := userToken(t, s, admin, "alice", "alice pw")
		bob := userToken(t, s, admin, "bob", "bob pw")
		dave := userToken(t, s, admin, "dave", "dave pw")
		room := publicRoom(t, s, alice)
		joinRoom(t, s, bob, room)
		status, body := sendText(t, s, bob, room, "bob's words")
		testserver.WantStatus(t, "bob sends", status, body, http.StatusOK)
		joinRoom(t, s, dave, room)
		// Before the erasure, a later joiner reads the shared history.
		if got := texts(t, s, dave, room); !slices.Equal(got, []string{"bob's words"}) {
			t.Fatalf("dave before erasure reads %v", got)
		}
		status, body = s.Do(t, "POST", admBase+"/deactivate/"+url.PathEscape(s.UserID("bob")), admin, map[string]any{"erase": true})
		testserver.WantStatus(t, "erase bob", status, body, http.StatusOK)
		if got := texts(t, s, alice, room); !slices.Equal(got, []string{"bob's words"}) {
			t.Fatalf("alice, joined when bob spoke, reads %v", got)
		}
		if got := texts(t, s, dave, room); !slices.Equal(got, []string{""}) {
			t.Fatalf("dave, who joined after bob spoke, reads %v, want the message redacted", got)
		}
		// /sync renders it the same way.
		status, body = s.Do(t, "GET", "/_matrix/client/v3/sync", dave, nil)
		testserver.WantStatus(t, "dave syncs", status, body, http.StatusOK)
		join, _ := body["rooms"].(map[string]any)["join"].(map[string]any)
		found := false
		for _, e := range join[room].(map[string]any)["timeline"].(map[string]any)["events"].([]any) {
			ev := e.(map[string]any)
			if ev["type"] == "m.room.message" && ev["sender"] == s.UserID("bob") {
				found = true
				if content, _ := ev["content"].(map[string]any); len(content) != 0 {
					t.Fatalf("dave's sync shows bob's message unredacted: %v", ev)
				}
			}
		}
		if !found {
			t.Fatalf("bob's message is not in dave's sync: %v", join[room])
		}
		// Without erase, nothing is redacted.
		carol := userToken(t, s, admin, "carol", "carol pw")
		joinRoom(t, s, carol, room)
		status, body = sendText(t, s, carol, room, "carol's words")
		testserver.WantStatus(t, "carol sends", status, body, http.StatusOK)
		erin := userToken(t, s, admin, "erin", "erin pw")
		joinRoom(t, s, erin, room)
		status, body = s.Do(t, "POST", admBase+"/deactivate/"+url.PathEscape(s.UserID("carol")), admin, nil)
		testserver.WantStatus(t, "deactivate carol", status, body, http.StatusOK)
		if got := texts(t, s, erin, room); !slices.Contains(got, "carol's words") {
			t.Fatalf("erin reads %v: a deactivation without erase redacted", got)
		}
	})
}
