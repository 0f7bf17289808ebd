package clientapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/myelin-chat/myelin/internal/testdb"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// hostile is one string of the corpus: raw is its bytes as they go into a
// path segment or a query value (percent-encoded byte by byte), lit is how
// it is written inside a JSON body, raw bytes and all (encoding/json would
// replace invalid UTF-8 if it wrote the body).
type hostile struct {
	name string
	raw  string
	lit  string
}

// hostileCorpus is what an attacker tries first: bytes PostgreSQL cannot
// store, encodings that are not UTF-8, Unicode that is valid but odd, and
// sizes past every limit.
func hostileCorpus() []hostile {
	lit := func(name, raw string) hostile { return hostile{name, raw, rawJSONString(raw)} }
	return []hostile{
		lit("nul", "a\x00b"),
		lit("nul-only", "\x00"),
		lit("invalid-utf8", "a\xffb"),
		lit("overlong-nul", "a\xc0\x80b"),
		lit("truncated", "a\xe2\x82"),
		// A lone surrogate: WTF-8 bytes in a path, the \u escape in JSON
		// (which encoding/json decodes to U+FFFD).
		{"lone-surrogate", "a\xed\xa0\x80b", `"a\ud800b"`},
		lit("noncharacters", "a\uFFFEb\uFFFF"),
		lit("rtl-override", "a\u202Eevil\u202C"),
		lit("zero-width", "a\u200Bb\uFEFFc\u200D"),
		lit("control", "a\x01\x1f\x7fb"),
		lit("emoji", "😀👍🏽"),
		lit("sql", "' OR 1=1; --"),
		lit("kilobyte", incompressible(1000)),
		lit("long", incompressible(70_000)),
	}
}

// rawJSONString quotes s as a JSON string, escaping only what JSON
// requires, so that bytes that are not UTF-8 stay as they are.
func rawJSONString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20:
			fmt.Fprintf(&b, `\u%04x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// incompressible is n bytes of letters that PostgreSQL's TOAST cannot
// squeeze under its index row limit, the same on every run.
func incompressible(n int) string {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = 'a' + byte(x%26)
	}
	return string(b)
}

// hostileCase is one request, made once per corpus string. In path and
// body, {X} is the hostile string (percent-encoded in the path, a JSON
// literal in the body), {Q} the same query-escaped, {QL} the JSON
// literal query-escaped (for filters in the query), {n} the string's
// index in the corpus (for transaction IDs), and {room}, {user},
// {device}, {sent}, {filter} the fixture's values (sent: the event ID the
// last request answered with; filter: the last filter ID).
type hostileCase struct {
	name   string
	method string
	path   string
	body   string
	// noAuth sends no access token.
	noAuth bool
	// keys are the top-level fields of the answer that must be equal
	// between engines too (the rest holds random IDs and times).
	keys []string
	// content: {X} is only inside an event's content, which is the
	// sender's to fill, so the event must be accepted whenever the body
	// is UTF-8 and the event within the size limit.
	content bool
}

var hostileCases = []hostileCase{
	// Identifiers in path parameters.
	{name: "room state", method: "GET", path: "/rooms/{X}/state"},
	{name: "room alias lookup", method: "GET", path: "/directory/room/{X}"},
	{name: "room alias create", method: "PUT", path: "/directory/room/{X}", body: `{"room_id":"{room}"}`},
	{name: "room alias create suffix", method: "PUT", path: "/directory/room/%23{X}:hs1.test", body: `{"room_id":"{room}"}`},
	{name: "room alias get suffix", method: "GET", path: "/directory/room/%23{X}:hs1.test"},
	{name: "join", method: "POST", path: "/join/{X}", body: `{}`},
	{name: "join alias", method: "POST", path: "/join/%23{X}:hs1.test", body: `{}`},
	{name: "state event type", method: "PUT", path: "/rooms/{room}/state/{X}/", body: `{"a":1}`},
	{name: "state key", method: "PUT", path: "/rooms/{room}/state/m.hostile/{X}", body: `{"a":1}`},
	{name: "state key get", method: "GET", path: "/rooms/{room}/state/m.hostile/{X}", keys: []string{"a"}},
	{name: "state type get", method: "GET", path: "/rooms/{room}/state/{X}/", keys: []string{"a"}},
	{name: "send event type", method: "PUT", path: "/rooms/{room}/send/{X}/t1", body: `{"body":"x"}`},
	{name: "send txn id", method: "PUT", path: "/rooms/{room}/send/m.room.message/{X}", body: `{"msgtype":"m.text","body":"x"}`},
	{name: "event id", method: "GET", path: "/rooms/{room}/event/{X}"},
	{name: "event context", method: "GET", path: "/rooms/{room}/context/{X}"},
	{name: "relations", method: "GET", path: "/_matrix/client/v1/rooms/{room}/relations/{X}"},
	{name: "redact", method: "PUT", path: "/rooms/{room}/redact/{X}/{X}", body: `{}`},
	{name: "receipt", method: "POST", path: "/rooms/{room}/receipt/m.read/{X}", body: `{}`},
	{name: "receipt thread", method: "POST", path: "/rooms/{room}/receipt/m.read/{sent}", body: `{"thread_id":{X}}`},
	{name: "report reason", method: "POST", path: "/rooms/{room}/report/{sent}", body: `{"reason":{X}}`},
	{name: "report room", method: "POST", path: "/rooms/{room}/report", body: `{"reason":{X}}`},
	{name: "pusher", method: "POST", path: "/pushers/set", body: `{"kind":"http","app_id":{X},"pushkey":{X},"app_display_name":{X},"device_display_name":{X},"lang":{X},"data":{"url":"https://push.example/_matrix/push/v1/notify"}}`},
	{name: "pushers get", method: "GET", path: "/pushers"},
	{name: "keys upload", method: "POST", path: "/keys/upload", body: `{"one_time_keys":{{X}:"k"},"fallback_keys":{{X}:"k"}}`},
	{name: "room upgrade", method: "POST", path: "/rooms/{room}/upgrade", body: `{"new_version":{X}}`},
	{name: "leave reason", method: "POST", path: "/rooms/{X}/leave", body: `{"reason":{X}}`},
	{name: "read markers", method: "POST", path: "/rooms/{room}/read_markers", body: `{"m.fully_read":{X}}`},
	{name: "report", method: "POST", path: "/rooms/{room}/report/{X}", body: `{}`},
	{name: "typing", method: "PUT", path: "/rooms/{room}/typing/{X}", body: `{"typing":true,"timeout":1000}`},
	{name: "members at", method: "GET", path: "/rooms/{room}/members?at={Q}"},
	{name: "messages from", method: "GET", path: "/rooms/{room}/messages?dir=b&from={Q}"},
	{name: "messages filter", method: "GET", path: "/rooms/{room}/messages?dir=b&filter={Q}"},
	{name: "sync inline filter", method: "GET", path: "/sync?timeout=0&filter=%7B%22room%22:%7B%22rooms%22:[{QL}],%22timeline%22:%7B%22types%22:[{QL}],%22not_senders%22:[{QL}]%7D%7D%7D"},
	{name: "messages inline filter", method: "GET", path: "/rooms/{room}/messages?dir=b&filter=%7B%22types%22:[{QL}],%22senders%22:[{QL}],%22not_rooms%22:[{QL}]%7D"},
	{name: "sync since", method: "GET", path: "/sync?timeout=0&since={Q}"},
	{name: "sync filter", method: "GET", path: "/sync?timeout=0&filter={Q}"},
	{name: "profile", method: "GET", path: "/profile/{X}"},
	{name: "profile user", method: "GET", path: "/profile/@{X}:hs1.test"},
	{name: "account data type", method: "PUT", path: "/user/{user}/account_data/{X}", body: `{"a":{X}}`},
	{name: "account data get", method: "GET", path: "/user/{user}/account_data/{X}", keys: []string{"a"}},
	{name: "account data user", method: "GET", path: "/user/{X}/account_data/m.x"},
	{name: "room account data", method: "PUT", path: "/user/{user}/rooms/{X}/account_data/{X}", body: `{}`},
	{name: "room tag", method: "PUT", path: "/user/{user}/rooms/{room}/tags/{X}", body: `{}`},
	{name: "tags get", method: "GET", path: "/user/{user}/rooms/{room}/tags", keys: []string{"tags"}},
	{name: "filter id", method: "GET", path: "/user/{user}/filter/{X}"},
	{name: "filter create", method: "POST", path: "/user/{user}/filter", body: `{"room":{"rooms":[{X}],"timeline":{"types":[{X}],"senders":[{X}]}}}`},
	{name: "sync stored filter", method: "GET", path: "/sync?timeout=0&filter={filter}"},
	{name: "device get", method: "GET", path: "/devices/{X}"},
	{name: "device rename", method: "PUT", path: "/devices/{X}", body: `{"display_name":"x"}`},
	{name: "device display name", method: "PUT", path: "/devices/{device}", body: `{"display_name":{X}}`},
	{name: "device display name get", method: "GET", path: "/devices/{device}", keys: []string{"display_name"}},
	{name: "to-device", method: "PUT", path: "/sendToDevice/{X}/{X}", body: `{"messages":{}}`},
	{name: "to-device target", method: "PUT", path: "/sendToDevice/m.x/t-{n}", body: `{"messages":{"{user}":{{X}:{}}}}`},
	{name: "push rule", method: "PUT", path: "/pushrules/global/content/{X}", body: `{"pattern":{X},"actions":["notify"]}`},
	{name: "media download", method: "GET", path: "/_matrix/client/v1/media/download/{X}/{X}"},
	{name: "media download local", method: "GET", path: "/_matrix/client/v1/media/download/hs1.test/{X}"},
	{name: "media thumbnail", method: "GET", path: "/_matrix/client/v1/media/thumbnail/hs1.test/{X}?width=32&height=32"},
	// Identifiers in JSON bodies.
	{name: "login user", method: "POST", path: "/login", noAuth: true,
		body: `{"type":"m.login.password","identifier":{"type":"m.id.user","user":{X}},"password":"x"}`},
	{name: "login device", method: "POST", path: "/login", noAuth: true,
		body: `{"type":"m.login.password","identifier":{"type":"m.id.user","user":"alice"},"password":"pw-alice","device_id":{X},"initial_device_display_name":{X}}`},
	{name: "register username", method: "POST", path: "/register", noAuth: true,
		body: `{"username":{X},"password":"pw","auth":{"type":"m.login.dummy"}}`},
	{name: "register device", method: "POST", path: "/register", noAuth: true,
		body: `{"password":"pw","auth":{"type":"m.login.dummy"},"device_id":{X},"initial_device_display_name":{X}}`},
	{name: "username available", method: "GET", path: "/register/available?username={Q}", noAuth: true},
	{name: "create room", method: "POST", path: "/createRoom", body: `{"room_alias_name":{X},"name":{X},"topic":{X}}`},
	{name: "create room names", method: "POST", path: "/createRoom", body: `{"name":{X},"topic":{X},"visibility":"public"}`},
	{name: "invite", method: "POST", path: "/rooms/{room}/invite", body: `{"user_id":{X}}`},
	{name: "kick", method: "POST", path: "/rooms/{room}/kick", body: `{"user_id":{X}}`},
	{name: "user directory", method: "POST", path: "/user_directory/search", body: `{"search_term":{X}}`},
	{name: "public rooms", method: "POST", path: "/publicRooms", body: `{"filter":{"generic_search_term":{X}}}`},
	{name: "keys query", method: "POST", path: "/keys/query", body: `{"device_keys":{{X}:[]}}`},
	{name: "keys claim", method: "POST", path: "/keys/claim", body: `{"one_time_keys":{"{user}":{{X}:"signed_curve25519"}}}`},
	// Free text: stored and served back the same on both engines.
	{name: "displayname", method: "PUT", path: "/profile/{user}/displayname", body: `{"displayname":{X}}`},
	{name: "displayname get", method: "GET", path: "/profile/{user}", keys: []string{"displayname"}},
	{name: "avatar", method: "PUT", path: "/profile/{user}/avatar_url", body: `{"avatar_url":{X}}`},
	{name: "presence", method: "PUT", path: "/presence/{user}/status", body: `{"presence":"online","status_msg":{X}}`},
	{name: "presence get", method: "GET", path: "/presence/{user}/status", keys: []string{"status_msg"}},
	{name: "room name", method: "PUT", path: "/rooms/{room}/state/m.room.name/", body: `{"name":{X}}`, content: true},
	{name: "room name get", method: "GET", path: "/rooms/{room}/state/m.room.name/", keys: []string{"name"}},
	{name: "room topic", method: "PUT", path: "/rooms/{room}/state/m.room.topic/", body: `{"topic":{X}}`, content: true},
	{name: "member displayname", method: "PUT", path: "/rooms/{room}/state/m.room.member/{user}", body: `{"membership":"join","displayname":{X}}`, content: true},
	{name: "members get", method: "GET", path: "/rooms/{room}/joined_members", keys: []string{"joined"}},
	{name: "message", method: "PUT", path: "/rooms/{room}/send/m.room.message/m-{n}", body: `{"msgtype":"m.text","body":{X}}`, content: true},
	{name: "message get", method: "GET", path: "/rooms/{room}/event/{sent}", keys: []string{"content", "type"}},
	{name: "annotation", method: "PUT", path: "/rooms/{room}/send/m.reaction/a-{n}", body: `{"m.relates_to":{"rel_type":"m.annotation","event_id":"{sent}","key":{X}}}`, content: true},
	{name: "relations get", method: "GET", path: "/_matrix/client/v1/rooms/{room}/relations/{sent}"},
	{name: "thread reply", method: "PUT", path: "/rooms/{room}/send/m.room.message/r-{n}", body: `{"msgtype":"m.text","body":"r","m.relates_to":{"rel_type":"m.thread","event_id":{X}}}`, content: true},
	{name: "reference", method: "PUT", path: "/rooms/{room}/send/m.room.message/f-{n}", body: `{"msgtype":"m.text","body":"r","m.relates_to":{"rel_type":{X},"event_id":{X}}}`, content: true},
	{name: "threads", method: "GET", path: "/_matrix/client/v1/rooms/{room}/threads"},
	{name: "message key", method: "PUT", path: "/rooms/{room}/send/m.room.message/k-{n}", body: `{"msgtype":"m.text","body":"k",{X}:{X}}`},
	{name: "message key get", method: "GET", path: "/rooms/{room}/event/{sent}", keys: []string{"content"}},
	{name: "search", method: "POST", path: "/search", body: `{"search_categories":{"room_events":{"search_term":{X}}}}`},
	{name: "search filter", method: "POST", path: "/search", body: `{"search_categories":{"room_events":{"search_term":"x","filter":{"rooms":[{X}]}}}}`},
}

// TestHostileStrings sends the corpus through every kind of place a
// client can put a string, on SQLite and on PostgreSQL, and wants the
// same answers from both and never a 5xx. PostgreSQL cannot store NUL and
// refuses invalid UTF-8 where SQLite stores anything, so every string
// that reaches the store unchecked shows up here as a difference.
func TestHostileStrings(t *testing.T) {
	type fixture struct {
		s           *testserver.Server
		token, room string
		user        string
		device      string
		vars        map[string]string
	}
	var fixtures []*fixture
	for _, engine := range testdb.Engines() {
		s := testserver.Start(t, testdb.NewURL(t, engine), nil)
		alice := s.Register("alice", "pw-alice")
		status, body := s.Do(t, "POST", "/_matrix/client/v3/createRoom", alice.AccessToken, map[string]any{"preset": "public_chat"})
		testserver.WantStatus(t, engine+": createRoom", status, body, http.StatusOK)
		fixtures = append(fixtures, &fixture{s: s, token: alice.AccessToken, room: body["room_id"].(string),
			user: alice.UserID.String(), device: alice.DeviceID.String(), vars: map[string]string{"{sent}": "$none", "{filter}": "0"}})
	}
	type answer struct {
		status  int
		errcode any
		keys    map[string]any
	}
	ask := func(t *testing.T, f *fixture, c hostileCase, h hostile, n int) answer {
		repl := strings.NewReplacer("{room}", f.room, "{user}", f.user, "{device}", f.device, "{sent}", f.vars["{sent}"], "{filter}", f.vars["{filter}"], "{n}", strconv.Itoa(n))
		path := repl.Replace(strings.NewReplacer("{X}", pathEscape(h.raw), "{Q}", url.QueryEscape(h.raw), "{QL}", url.QueryEscape(h.lit)).Replace(c.path))
		var body any
		if c.body != "" {
			body = []byte(repl.Replace(strings.ReplaceAll(c.body, "{X}", h.lit)))
		}
		token := f.token
		if c.noAuth {
			token = ""
		}
		if !strings.HasPrefix(path, "/_matrix/") {
			path = "/_matrix/client/v3" + path
		}
		r := testserver.Send(t, nil, c.method, f.s.URL+path, token, body)
		if os.Getenv("HOSTILE_DEBUG") != "" {
			t.Logf("ANS %-28s %d %.150s", c.name, r.Status, r.Raw)
		}
		if r.Status >= 500 {
			t.Errorf("%s: %s: %d %.300s", c.name, f.s.Config.Database.URL, r.Status, r.Raw)
		}
		if c.content && utf8.ValidString(h.lit) && len(h.lit) < 60_000 && r.Status != http.StatusOK {
			t.Errorf("%s: event content refused: %d %.300s", c.name, r.Status, r.Raw)
		}
		a := answer{status: r.Status, errcode: r.JSON["errcode"], keys: map[string]any{}}
		for _, k := range c.keys {
			a.keys[k] = r.JSON[k]
		}
		if id, ok := r.JSON["filter_id"].(string); ok {
			f.vars["{filter}"] = id
		}
		if id, ok := r.JSON["event_id"].(string); ok {
			f.vars["{sent}"] = id
		} else if c.method != "GET" {
			f.vars["{sent}"] = "$none"
		}
		return a
	}
	for n, h := range hostileCorpus() {
		t.Run(h.name, func(t *testing.T) {
			for _, c := range hostileCases {
				var first answer
				for i, f := range fixtures {
					a := ask(t, f, c, h, n)
					if i == 0 {
						first = a
						continue
					}
					if a.status != first.status || a.errcode != first.errcode || !reflect.DeepEqual(a.keys, first.keys) {
						t.Errorf("%s: engines differ: sqlite %d %v %s, postgres %d %v %s", c.name,
							first.status, first.errcode, short(first.keys), a.status, a.errcode, short(a.keys))
					}
				}
			}
		})
	}
}

// pathEscape percent-encodes every byte that is not unreserved, so that
// invalid UTF-8 reaches the server as the bytes themselves.
func pathEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

func short(v any) string {
	raw, _ := json.Marshal(v)
	if len(raw) > 200 {
		return string(raw[:200]) + "..."
	}
	return string(raw)
}

// TestSearchAfterNUL: a message holding NUL once stopped PostgreSQL's
// search index for good (every later search waited for it, then found
// nothing). Both messages are found now, promptly, on both engines, and
// the NUL is served back as it was sent.
func TestSearchAfterNUL(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw-alice")
		status, body := s.Do(t, "POST", "/_matrix/client/v3/createRoom", alice.AccessToken, map[string]any{})
		testserver.WantStatus(t, "createRoom", status, body, http.StatusOK)
		room := body["room_id"].(string)
		send := func(txn, rawBody string) string {
			r := testserver.Send(t, nil, "PUT", s.URL+"/_matrix/client/v3/rooms/"+room+"/send/m.room.message/"+txn,
				alice.AccessToken, []byte(`{"msgtype":"m.text","body":`+rawBody+`}`))
			wireOK(t, "send "+txn, r)
			return r.JSON["event_id"].(string)
		}
		poisoned := send("t1", `"poisoned\u0000needle"`)
		plain := send("t2", `"plain haystack"`)
		for term, want := range map[string]string{"haystack": plain, "needle": poisoned} {
			start := time.Now()
			res := searchRooms(t, alice, map[string]any{"search_term": term}, "")
			if len(res.Results) != 1 || res.Results[0].Result.ID.String() != want {
				t.Fatalf("search %q: %d results, want %s", term, len(res.Results), want)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Fatalf("search %q took %v: the indexer stalled", term, took)
			}
		}
		r := testserver.Send(t, nil, "GET", s.URL+"/_matrix/client/v3/rooms/"+room+"/event/"+url.PathEscape(poisoned), alice.AccessToken, nil)
		wireOK(t, "get event", r)
		if got := r.JSON["content"].(map[string]any)["body"]; got != "poisoned\x00needle" {
			t.Fatalf("body served back as %q", got)
		}
	})
}

// TestPushCountsBadThreadRoot: a thread root that cannot be an event ID
// (here, holding NUL) is the sender's content, not a reason to lose the
// notification: the reply counts on the main timeline, on both engines.
func TestPushCountsBadThreadRoot(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw-alice")
		bob := s.Register("bob", "pw-bob")
		status, body := s.Do(t, "POST", "/_matrix/client/v3/createRoom", alice.AccessToken, map[string]any{"preset": "public_chat"})
		testserver.WantStatus(t, "createRoom", status, body, http.StatusOK)
		room := body["room_id"].(string)
		status, body = s.Do(t, "POST", "/_matrix/client/v3/join/"+room, bob.AccessToken, map[string]any{})
		testserver.WantStatus(t, "join", status, body, http.StatusOK)
		r := testserver.Send(t, nil, "PUT", s.URL+"/_matrix/client/v3/rooms/"+room+"/send/m.room.message/t1", bob.AccessToken,
			[]byte(`{"msgtype":"m.text","body":"hello","m.relates_to":{"rel_type":"m.thread","event_id":"$a\u0000b"}}`))
		wireOK(t, "thread reply", r)
		deadline := time.Now().Add(5 * time.Second)
		for {
			status, body := s.Do(t, "GET", "/_matrix/client/v3/sync?timeout=0", alice.AccessToken, nil)
			testserver.WantStatus(t, "sync", status, body, http.StatusOK)
			joined, _ := body["rooms"].(map[string]any)["join"].(map[string]any)
			unread, _ := joined[room].(map[string]any)["unread_notifications"].(map[string]any)
			if n, _ := unread["notification_count"].(float64); n == 1 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the reply was never counted: %v", unread)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}
