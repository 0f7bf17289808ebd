package clientapi_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"maunium.net/go/mautrix"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestEventSizeLimits checks that every way of sending an event answers
// an event over 65,536 bytes, or a type or state key over 255 bytes,
// with 413 M_TOO_LARGE, as Synapse does, and leaves what fits alone.
func TestEventSizeLimits(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw-alice")
		tok := alice.AccessToken
		room, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{})
		if err != nil {
			t.Fatal(err)
		}
		sent, err := alice.SendText(t.Context(), room.RoomID, "to redact")
		if err != nil {
			t.Fatal(err)
		}
		rid := url.PathEscape(room.RoomID.String())
		base := s.URL + "/_matrix/client/v3"
		big := strings.Repeat("a", 65536)
		long := strings.Repeat("t", 256)
		fits := strings.Repeat("t", 255)
		tooLarge := func(what, method, path string, body any) {
			t.Helper()
			wireErr(t, what, testserver.Send(t, nil, method, base+path, tok, body), http.StatusRequestEntityTooLarge, "M_TOO_LARGE")
		}
		tooLarge("send: big content", "PUT", "/rooms/"+rid+"/send/m.room.message/t1", map[string]any{"body": big})
		tooLarge("send: long type", "PUT", "/rooms/"+rid+"/send/"+long+"/t2", map[string]any{})
		tooLarge("state: long type", "PUT", "/rooms/"+rid+"/state/"+long+"/k", map[string]any{})
		tooLarge("state: long state key", "PUT", "/rooms/"+rid+"/state/m.x/"+long, map[string]any{})
		tooLarge("state: big content", "PUT", "/rooms/"+rid+"/state/m.x/k", map[string]any{"a": big})
		tooLarge("redact: big reason", "PUT", "/rooms/"+rid+"/redact/"+url.PathEscape(sent.EventID.String())+"/t3", map[string]any{"reason": big})
		tooLarge("createRoom: big initial_state", "POST", "/createRoom", map[string]any{"initial_state": []any{
			map[string]any{"type": "m.x", "state_key": "", "content": map[string]any{"a": big}}}})
		tooLarge("createRoom: long initial_state type", "POST", "/createRoom", map[string]any{"initial_state": []any{
			map[string]any{"type": long, "state_key": "", "content": map[string]any{}}}})
		tooLarge("createRoom: big name", "POST", "/createRoom", map[string]any{"name": big})
		tooLarge("leave: big reason", "POST", "/rooms/"+rid+"/leave", map[string]any{"reason": big})

		// At the limits, everything is accepted.
		wireOK(t, "send: 255-byte type", testserver.Send(t, nil, "PUT", base+"/rooms/"+rid+"/send/"+fits+"/t4", tok, map[string]any{}))
		wireOK(t, "state: 255-byte state key", testserver.Send(t, nil, "PUT", base+"/rooms/"+rid+"/state/m.x/"+fits, tok, map[string]any{}))
		wireOK(t, "send: 60 kB", testserver.Send(t, nil, "PUT", base+"/rooms/"+rid+"/send/m.room.message/t5", tok, map[string]any{"body": big[:60000]}))
	})
}

// TestMalformedNamesAreClientErrors checks that a malformed alias,
// server name or user ID is 400 M_INVALID_PARAM on join, profile and
// media, with federation on: never a 502 from trying to reach a server
// that cannot exist, nor a 404.
func TestMalformedNamesAreClientErrors(t *testing.T) {
	testserver.EachEngine(t, func(c *config.Config) { c.Federation.Enabled = true }, func(t *testing.T, s *testserver.Server) {
		tok := s.Register("alice", "pw-alice").AccessToken
		base := s.URL + "/_matrix/client/v3"
		invalid := func(what, method, url string) {
			t.Helper()
			wireErr(t, what, testserver.Send(t, nil, method, url, tok, map[string]any{}), http.StatusBadRequest, "M_INVALID_PARAM")
		}
		for _, alias := range []string{"#bad alias:hs1.test", "#room:bad..name", "#room:bad_server", "#nocolon"} {
			invalid("join "+alias, "POST", base+"/join/"+url.PathEscape(alias))
			invalid("knock "+alias, "POST", base+"/knock/"+url.PathEscape(alias))
		}
		invalid("join via bad server", "POST", base+"/join/"+url.PathEscape("!abc:hs2.test")+"?via=bad..name")
		invalid("join server_name bad", "POST", base+"/join/"+url.PathEscape("!abc:hs2.test")+"?server_name=bad_server")
		invalid("rooms/join via bad server", "POST", base+"/rooms/"+url.PathEscape("!abc:hs2.test")+"/join?via=bad..name")
		invalid("publicRooms of bad..name", "GET", base+"/publicRooms?server=bad..name")
		invalid("POST publicRooms of bad_server", "POST", base+"/publicRooms?server=bad_server")
		// A room ID whose server part is malformed names no server to
		// join through: 404, never a 502 from trying to reach it.
		wireErr(t, "join !abc:bad..name", testserver.Send(t, nil, "POST", base+"/join/"+url.PathEscape("!abc:bad..name"), tok, map[string]any{}),
			http.StatusNotFound, "M_NOT_FOUND")
		for _, user := range []string{"@user:bad..name", "@user:bad_server", "user", "@user:"} {
			for _, method := range []string{"GET"} {
				invalid("profile "+user, method, base+"/profile/"+url.PathEscape(user))
				invalid("profile field "+user, method, base+"/profile/"+url.PathEscape(user)+"/displayname")
			}
		}
		for _, p := range []string{
			"/_matrix/client/v1/media/download/bad_server/abc",
			"/_matrix/client/v1/media/download/bad..server/abc/name.txt",
			"/_matrix/client/v1/media/thumbnail/bad..server/abc?width=32&height=32",
			"/_matrix/media/v3/download/bad_server/abc",
		} {
			r := testserver.Send(t, nil, "GET", s.URL+p, tok, nil)
			wireErr(t, "media "+p, r, http.StatusBadRequest, "M_INVALID_PARAM")
		}
		// A well-formed name still reaches its server (and fails there,
		// here unreachable): the check refuses only what is malformed.
		wireErr(t, "media of a local, unknown ID", testserver.Send(t, nil, "GET", s.URL+"/_matrix/client/v1/media/download/hs1.test/abc", tok, nil), http.StatusNotFound, "M_NOT_FOUND")
	})
}

// TestRegisterEmptyUsername checks that "username": "" is refused
// (Synapse: M_INVALID_USERNAME), while an absent username still gets a
// generated one.
func TestRegisterEmptyUsername(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		base := s.URL + "/_matrix/client/v3"
		auth := map[string]any{"type": "m.login.dummy"}
		r := testserver.Send(t, nil, "POST", base+"/register", "", map[string]any{"username": "", "password": "pw-1234567", "auth": auth})
		wireErr(t, "empty username", r, http.StatusBadRequest, "M_INVALID_USERNAME")
		r = testserver.Send(t, nil, "POST", base+"/register", "", map[string]any{"password": "pw-1234567", "auth": auth})
		wireOK(t, "no username", r)
		if uid, _ := r.JSON["user_id"].(string); !strings.HasPrefix(uid, "@") || strings.HasPrefix(uid, "@:") {
			t.Fatalf("no username: got user_id %q", uid)
		}
	})
}

// TestTokenInHeaderAndQuery checks that a request carrying an access
// token both in the Authorization header and in the query string is
// refused (Synapse: 401 M_MISSING_TOKEN), even when both are the same
// valid token.
func TestTokenInHeaderAndQuery(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		tok := s.Register("alice", "pw-alice").AccessToken
		whoami := s.URL + "/_matrix/client/v3/account/whoami"
		wireErr(t, "both", testserver.Send(t, nil, "GET", whoami+"?access_token="+tok, tok, nil), http.StatusUnauthorized, "M_MISSING_TOKEN")
		wireOK(t, "header", testserver.Send(t, nil, "GET", whoami, tok, nil))
		wireOK(t, "query", testserver.Send(t, nil, "GET", whoami+"?access_token="+tok, "", nil))
	})
}

// TestUserObjectLimits checks the bound on every object a user stores
// that later work iterates over: over it, M_TOO_LARGE and nothing
// stored; at it, accepted.
func TestUserObjectLimits(t *testing.T) {
	testserver.EachEngine(t, func(c *config.Config) {
		c.Limits.MaxFilterBytes = 1024
		c.Limits.MaxAccountDataBytes = 1024
		c.Limits.MaxStatusMsgBytes = 64
	}, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw-alice")
		tok := alice.AccessToken
		me := url.PathEscape(alice.UserID.String())
		base := s.URL + "/_matrix/client/v3"
		send := func(method, path string, body any) testserver.Response {
			return testserver.Send(t, nil, method, base+path, tok, body)
		}
		// sized is a JSON object of exactly n bytes.
		sized := func(n int) string { return `{"a":"` + strings.Repeat("x", n-8) + `"}` }
		room, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{})
		if err != nil {
			t.Fatal(err)
		}
		rid := url.PathEscape(room.RoomID.String())

		// Filters, stored or inline.
		wireErr(t, "filter over", send("POST", "/user/"+me+"/filter", sized(1025)), http.StatusRequestEntityTooLarge, "M_TOO_LARGE")
		wireOK(t, "filter at", send("POST", "/user/"+me+"/filter", sized(1024)))
		wireErr(t, "inline sync filter over", send("GET", "/sync?filter="+url.QueryEscape(sized(1025)), nil), http.StatusRequestEntityTooLarge, "M_TOO_LARGE")
		wireOK(t, "inline sync filter at", send("GET", "/sync?filter="+url.QueryEscape(sized(1024)), nil))
		wireErr(t, "messages filter over", send("GET", "/rooms/"+rid+"/messages?dir=b&filter="+url.QueryEscape(sized(1025)), nil), http.StatusRequestEntityTooLarge, "M_TOO_LARGE")

		// Account data, global and per room, and its type.
		wireErr(t, "account data over", send("PUT", "/user/"+me+"/account_data/m.big", sized(1025)), http.StatusRequestEntityTooLarge, "M_TOO_LARGE")
		wireErr(t, "room account data over", send("PUT", "/user/"+me+"/rooms/"+rid+"/account_data/m.big", sized(1025)), http.StatusRequestEntityTooLarge, "M_TOO_LARGE")
		wireOK(t, "account data at", send("PUT", "/user/"+me+"/account_data/m.big", sized(1024)))
		wireErr(t, "account data type over", send("PUT", "/user/"+me+"/account_data/"+strings.Repeat("t", 256), map[string]any{}), http.StatusBadRequest, "M_TOO_LARGE")
		wireOK(t, "account data type at", send("PUT", "/user/"+me+"/account_data/"+strings.Repeat("t", 255), map[string]any{}))

		// A room's tags together.
		tag := map[string]any{"order": 0.5, "note": strings.Repeat("n", 300)}
		for i := range 3 {
			wireOK(t, "tag", send("PUT", "/user/"+me+"/rooms/"+rid+"/tags/u.t"+string(rune('0'+i)), tag))
		}
		wireErr(t, "tags over", send("PUT", "/user/"+me+"/rooms/"+rid+"/tags/u.t3", tag), http.StatusRequestEntityTooLarge, "M_TOO_LARGE")
		r := send("GET", "/user/"+me+"/rooms/"+rid+"/tags", nil)
		if tags, _ := r.JSON["tags"].(map[string]any); len(tags) != 3 {
			t.Fatalf("tags after the refusal: %s", r.Raw)
		}

		// Presence status_msg.
		wireErr(t, "status_msg over", send("PUT", "/presence/"+me+"/status", map[string]any{"presence": "online", "status_msg": strings.Repeat("s", 65)}), http.StatusBadRequest, "M_TOO_LARGE")
		wireOK(t, "status_msg at", send("PUT", "/presence/"+me+"/status", map[string]any{"presence": "online", "status_msg": strings.Repeat("s", 64)}))

		// Profile fields.
		wireErr(t, "avatar_url over", send("PUT", "/profile/"+me+"/avatar_url", map[string]any{"avatar_url": "mxc://hs1.test/" + strings.Repeat("a", 1000)}), http.StatusBadRequest, "M_TOO_LARGE")

		// Device display names, at login and registration as on rename
		// (Synapse: 100 characters).
		long, fits := strings.Repeat("d", 101), strings.Repeat("é", 100)
		login := func(name string) testserver.Response {
			return testserver.Send(t, nil, "POST", base+"/login", "", map[string]any{"type": "m.login.password",
				"identifier": map[string]any{"type": "m.id.user", "user": "alice"}, "password": "pw-alice", "initial_device_display_name": name})
		}
		wireErr(t, "login device name over", login(long), http.StatusBadRequest, "M_TOO_LARGE")
		wireOK(t, "login device name at", login(fits))
		register := func(name string) testserver.Response {
			return testserver.Send(t, nil, "POST", base+"/register", "", map[string]any{"username": "bob", "password": "pw-bob-123",
				"auth": map[string]any{"type": "m.login.dummy"}, "initial_device_display_name": name})
		}
		wireErr(t, "register device name over", register(long), http.StatusBadRequest, "M_TOO_LARGE")
		wireOK(t, "register device name at (the name was not taken by the refusal)", register(fits))
		wireErr(t, "rename device over", send("PUT", "/devices/"+url.PathEscape(alice.DeviceID.String()), map[string]any{"display_name": long}), http.StatusBadRequest, "M_TOO_LARGE")

		// Pushers: what goes to the gateway with every notification.
		pusher := func(data map[string]any) testserver.Response {
			return send("POST", "/pushers/set", map[string]any{"kind": "http", "app_id": "a", "pushkey": "k",
				"app_display_name": "A", "device_display_name": "D", "lang": "en", "data": data})
		}
		wireErr(t, "pusher data over", pusher(map[string]any{"url": "https://push.example/_matrix/push/v1/notify", "x": strings.Repeat("x", 8192)}), http.StatusBadRequest, "M_TOO_LARGE")
	})
}
