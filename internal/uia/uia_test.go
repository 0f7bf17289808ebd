package uia_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/regtokens"
	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
	// Databases copied from one migrated once, not migrated per test.
	_ "github.com/myelin-chat/myelin/internal/testdb/migrated"
	"github.com/myelin-chat/myelin/internal/uia"
)

// stage is a configurable test stage: it fails with err when set, and
// remembers data in the session when remember is set.
type stage struct {
	typ      string
	params   any
	err      error
	calls    int
	mgr      *uia.Manager
	remember map[string]any
	seen     []map[string]json.RawMessage
}

func (s *stage) Type() string { return s.typ }
func (s *stage) Params() any  { return s.params }
func (s *stage) Complete(ctx context.Context, sess *uia.Session, a *uia.Auth) error {
	s.calls++
	s.seen = append(s.seen, cloneData(sess.Data))
	if s.err != nil {
		return s.err
	}
	for k, v := range s.remember {
		if err := s.mgr.Remember(ctx, sess, k, v); err != nil {
			return err
		}
	}
	return nil
}

func cloneData(d map[string]json.RawMessage) map[string]json.RawMessage {
	out := make(map[string]json.RawMessage, len(d))
	for k, v := range d {
		out[k] = v
	}
	return out
}

// eachStore runs fn with a fresh store per engine.
func eachStore(t *testing.T, fn func(t *testing.T, db *store.DB)) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		db, err := store.Open(context.Background(), dbURL, 4)
		if err != nil {
			t.Fatalf("store: %v", err)
		}
		t.Cleanup(func() { db.Close() })
		fn(t, db)
	})
}

func auth(typ, session string, fields map[string]any) *uia.Auth {
	raw := map[string]any{}
	for k, v := range fields {
		raw[k] = v
	}
	if typ != "" {
		raw["type"] = typ
	}
	if session != "" {
		raw["session"] = session
	}
	b, _ := json.Marshal(raw)
	a, err := uia.ParseAuth(b)
	if err != nil {
		panic(err)
	}
	return a
}

// challenge asserts err is a 401 challenge and returns its body.
func challenge(t *testing.T, what string, err error, wantCode string) map[string]any {
	t.Helper()
	e, ok := mxerr.As(err)
	if !ok {
		t.Fatalf("%s: %v, want a 401 challenge", what, err)
	}
	if e.Status != http.StatusUnauthorized || e.Code != wantCode {
		t.Fatalf("%s: %d %q, want 401 %q", what, e.Status, e.Code, wantCode)
	}
	raw, err := json.Marshal(e.Body())
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	body := map[string]any{}
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if wantCode == "" {
		if _, ok := body["errcode"]; ok {
			t.Fatalf("%s: challenge without failure carries an errcode: %s", what, raw)
		}
	}
	return body
}

func completed(t *testing.T, body map[string]any) []string {
	t.Helper()
	list, ok := body["completed"].([]any)
	if !ok {
		t.Fatalf("completed is %T %v, want a list", body["completed"], body["completed"])
	}
	out := []string{}
	for _, v := range list {
		out = append(out, v.(string))
	}
	return out
}

func wantErr(t *testing.T, what string, err error, status int, code string) {
	t.Helper()
	e, ok := mxerr.As(err)
	if !ok || e.Status != status || e.Code != code {
		t.Fatalf("%s: %v, want %d %s", what, err, status, code)
	}
}

var req = uia.Request{Method: "POST", URI: "/_matrix/client/v3/delete_devices", Localpart: "alice"}

func withAuth(r uia.Request, a *uia.Auth) uia.Request {
	r.Auth = a
	return r
}

func TestParseAuth(t *testing.T) {
	for _, raw := range []string{"", "null"} {
		if a, err := uia.ParseAuth(json.RawMessage(raw)); a != nil || err != nil {
			t.Fatalf("ParseAuth(%q) = %v, %v; want nil, nil", raw, a, err)
		}
	}
	a, err := uia.ParseAuth(json.RawMessage(`{"type":"m.login.password","session":"S","password":"pw","identifier":{"type":"m.id.user","user":"a"}}`))
	if err != nil || a.Type != "m.login.password" || a.Session != "S" || string(a.Fields["password"]) != `"pw"` || a.Fields["identifier"] == nil {
		t.Fatalf("ParseAuth: %+v %v", a, err)
	}
	for _, raw := range []string{`[]`, `"x"`, `{"type":5}`, `{"session":{}}`} {
		_, err := uia.ParseAuth(json.RawMessage(raw))
		wantErr(t, "ParseAuth "+raw, err, http.StatusBadRequest, "M_BAD_JSON")
	}
}

// TestManagerChallenge checks the 401 body a request without auth gets.
func TestManagerChallenge(t *testing.T) {
	eachStore(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		m := uia.NewManager(db, time.Hour, nil)
		a := &stage{typ: "m.login.a", params: map[string]any{"policy": 1}}
		b := &stage{typ: "m.login.b"}
		unused := &stage{typ: "m.login.unused", params: map[string]any{"x": true}}
		flows := []uia.Flow{{"m.login.a", "m.login.b"}, {"m.login.b"}}
		stages := []uia.Stage{a, b, unused}

		_, err := m.Check(ctx, req, flows, stages)
		body := challenge(t, "no auth", err, "")
		raw, _ := json.Marshal(body["flows"])
		if string(raw) != `[{"stages":["m.login.a","m.login.b"]},{"stages":["m.login.b"]}]` {
			t.Fatalf("flows: %s", raw)
		}
		raw, _ = json.Marshal(body["params"])
		if string(raw) != `{"m.login.a":{"policy":1}}` {
			t.Fatalf("params: %s (stages outside the flows, and stages without params, must not appear)", raw)
		}
		first, _ := body["session"].(string)
		if first == "" {
			t.Fatalf("no session: %v", body)
		}
		if c := completed(t, body); len(c) != 0 {
			t.Fatalf("completed: %v", c)
		}

		// An auth object without type or session also starts a session;
		// each such request gets a new one.
		_, err = m.Check(ctx, withAuth(req, auth("", "", nil)), flows, stages)
		body = challenge(t, "empty auth", err, "")
		if s, _ := body["session"].(string); s == "" || s == first {
			t.Fatalf("second session %q, first %q", s, first)
		}
		// Presenting the session without a stage repeats the challenge.
		_, err = m.Check(ctx, withAuth(req, auth("", first, nil)), flows, stages)
		body = challenge(t, "session only", err, "")
		if body["session"] != first {
			t.Fatalf("session changed: %v", body)
		}
		if a.calls+b.calls+unused.calls != 0 {
			t.Fatal("a stage ran without being asked for")
		}
	})
}

// TestManagerStages walks a two-stage flow, failing stages and a wrong
// stage type on the way.
func TestManagerStages(t *testing.T) {
	eachStore(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		m := uia.NewManager(db, time.Hour, nil)
		a := &stage{typ: "m.login.a"}
		b := &stage{typ: "m.login.b", err: mxerr.Forbidden("wrong password")}
		outside := &stage{typ: "m.login.outside"}
		flows := []uia.Flow{{"m.login.a", "m.login.b"}}
		stages := []uia.Stage{a, b, outside}

		_, err := m.Check(ctx, req, flows, stages)
		session := challenge(t, "start", err, "")["session"].(string)

		// The first stage: recorded, the flow is not done yet.
		_, err = m.Check(ctx, withAuth(req, auth("m.login.a", session, nil)), flows, stages)
		body := challenge(t, "stage a", err, "")
		if body["session"] != session || !slices.Equal(completed(t, body), []string{"m.login.a"}) {
			t.Fatalf("after stage a: %v", body)
		}
		// Repeating it does not list it twice.
		_, err = m.Check(ctx, withAuth(req, auth("m.login.a", session, nil)), flows, stages)
		if c := completed(t, challenge(t, "stage a again", err, "")); !slices.Equal(c, []string{"m.login.a"}) {
			t.Fatalf("after stage a twice: %v", c)
		}

		// Unknown types and types outside the flows: a 401 with an
		// errcode, the session and its progress kept.
		for _, typ := range []string{"m.login.bogus", "m.login.outside"} {
			_, err = m.Check(ctx, withAuth(req, auth(typ, session, nil)), flows, stages)
			body := challenge(t, typ, err, "M_BAD_JSON")
			if body["session"] != session || !slices.Equal(completed(t, body), []string{"m.login.a"}) {
				t.Fatalf("%s: %v", typ, body)
			}
		}
		if outside.calls != 0 {
			t.Fatal("a stage outside the flows ran")
		}

		// A failing stage: its errcode in the challenge, not completed.
		_, err = m.Check(ctx, withAuth(req, auth("m.login.b", session, nil)), flows, stages)
		body = challenge(t, "stage b failing", err, "M_FORBIDDEN")
		if body["error"] != "wrong password" || body["session"] != session || !slices.Equal(completed(t, body), []string{"m.login.a"}) {
			t.Fatalf("stage b failing: %v", body)
		}
		// A stage failing with a non-Matrix error passes it through.
		boom := errors.New("database down")
		b.err = boom
		if _, err = m.Check(ctx, withAuth(req, auth("m.login.b", session, nil)), flows, stages); !errors.Is(err, boom) {
			t.Fatalf("internal error: %v", err)
		}

		// The second stage completes the flow.
		b.err = nil
		sess, err := m.Check(ctx, withAuth(req, auth("m.login.b", session, nil)), flows, stages)
		if err != nil || sess == nil || sess.ID != session || sess.Localpart != "alice" || !slices.Equal(sess.Completed, []string{"m.login.a", "m.login.b"}) {
			t.Fatalf("flow done: %+v %v", sess, err)
		}
		// Until finished, the session keeps authenticating the operation,
		// even through another manager (a restart) on the same store.
		m2 := uia.NewManager(db, time.Hour, nil)
		if sess, err := m2.Check(ctx, withAuth(req, auth("", session, nil)), flows, stages); err != nil || sess.ID != session {
			t.Fatalf("done session, other manager: %+v %v", sess, err)
		}
		if err := m.Finish(ctx, sess); err != nil {
			t.Fatalf("finish: %v", err)
		}
		_, err = m.Check(ctx, withAuth(req, auth("m.login.a", session, nil)), flows, stages)
		wantErr(t, "finished session", err, http.StatusBadRequest, "M_UNKNOWN")
	})
}

// TestManagerSessionBinding: a session authenticates one operation.
func TestManagerSessionBinding(t *testing.T) {
	eachStore(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		m := uia.NewManager(db, time.Hour, nil)
		a := &stage{typ: "m.login.a"}
		flows, stages := []uia.Flow{{"m.login.a"}}, []uia.Stage{a}

		_, err := m.Check(ctx, req, flows, stages)
		session := challenge(t, "start", err, "")["session"].(string)
		for name, other := range map[string]uia.Request{
			"other URI":    {Method: req.Method, URI: "/_matrix/client/v3/account/deactivate", Localpart: req.Localpart},
			"other method": {Method: "DELETE", URI: req.URI, Localpart: req.Localpart},
			"other user":   {Method: req.Method, URI: req.URI, Localpart: "mallory"},
		} {
			_, err := m.Check(ctx, withAuth(other, auth("m.login.a", session, nil)), flows, stages)
			wantErr(t, name, err, http.StatusForbidden, "M_FORBIDDEN")
		}
		if a.calls != 0 {
			t.Fatal("stage ran for a mismatched request")
		}
		// The original operation still works.
		if sess, err := m.Check(ctx, withAuth(req, auth("m.login.a", session, nil)), flows, stages); err != nil || sess.ID != session {
			t.Fatalf("original operation: %+v %v", sess, err)
		}

		// Unknown sessions.
		_, err = m.Check(ctx, withAuth(req, auth("m.login.a", "nosuchsession", nil)), flows, stages)
		wantErr(t, "unknown session", err, http.StatusBadRequest, "M_UNKNOWN")

		// Expired sessions are unknown, even before a sweep removes them.
		expiring := uia.NewManager(db, -time.Second, nil)
		_, err = expiring.Check(ctx, req, flows, stages)
		old := challenge(t, "expired start", err, "")["session"].(string)
		_, err = m.Check(ctx, withAuth(req, auth("m.login.a", old, nil)), flows, stages)
		wantErr(t, "expired session", err, http.StatusBadRequest, "M_UNKNOWN")
	})
}

// TestManagerSweep: Sweep removes expired sessions only and hands each
// one's data to onExpire; with the registration hook, an abandoned
// session's reserved token use is given back.
func TestManagerSweep(t *testing.T) {
	eachStore(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		var expired []map[string]json.RawMessage
		onExpire := func(_ context.Context, data map[string]json.RawMessage) { expired = append(expired, data) }
		live := uia.NewManager(db, time.Hour, onExpire)
		dying := uia.NewManager(db, -time.Second, onExpire)
		flows := []uia.Flow{{"m.login.a", "m.login.b"}}
		// mk starts a session; its data is set through the store, since
		// an expired session can no longer run a stage.
		mk := func(m *uia.Manager, data map[string]any) string {
			t.Helper()
			_, err := m.Check(ctx, req, flows, nil)
			session := challenge(t, "start", err, "")["session"].(string)
			if data != nil {
				raw, err := db.GetUIASession(ctx, session)
				if err != nil {
					t.Fatalf("get session: %v", err)
				}
				raw.Data, _ = json.Marshal(data)
				if err := db.UpdateUIASession(ctx, raw); err != nil {
					t.Fatalf("update session: %v", err)
				}
			}
			return session
		}
		liveSession := mk(live, nil)
		mk(dying, map[string]any{"registration_token": "dead", "n": 7})
		mk(dying, nil)

		// Remember stores data in a live session...
		remember := &stage{typ: "m.login.a", mgr: live, remember: map[string]any{"registration_token": "live"}}
		_, err := live.Check(ctx, withAuth(req, auth("m.login.a", liveSession, nil)), flows, []uia.Stage{remember})
		challenge(t, "remember", err, "")
		// ...where the next round finds it.
		next := &stage{typ: "m.login.b"}
		_, err = live.Check(ctx, withAuth(req, auth("m.login.b", liveSession, nil)), flows, []uia.Stage{&stage{typ: "m.login.a"}, next})
		if err != nil || len(next.seen) != 1 || string(next.seen[0]["registration_token"]) != `"live"` {
			t.Fatalf("remembered data: %v %v", next.seen, err)
		}

		live.Sweep(ctx)
		if len(expired) != 2 {
			t.Fatalf("onExpire called %d times, want 2: %v", len(expired), expired)
		}
		var withToken map[string]json.RawMessage
		for _, d := range expired {
			if _, ok := d["registration_token"]; ok {
				withToken = d
			} else if len(d) != 0 {
				t.Fatalf("data of the session without data: %v", d)
			}
		}
		if withToken == nil || string(withToken["registration_token"]) != `"dead"` || string(withToken["n"]) != "7" {
			t.Fatalf("expired data: %v", expired)
		}
		// A second sweep finds nothing; the live session is untouched.
		live.Sweep(ctx)
		if len(expired) != 2 {
			t.Fatalf("second sweep called onExpire again: %v", expired)
		}
		if sess, err := live.Check(ctx, withAuth(req, auth("", liveSession, nil)), flows, nil); err != nil || sess.ID != liveSession {
			t.Fatalf("live session after sweep: %+v %v", sess, err)
		}

		// Without a hook, sweeping still deletes.
		quiet := uia.NewManager(db, -time.Second, nil)
		_, err = quiet.Check(ctx, req, flows, nil)
		gone := challenge(t, "quiet start", err, "")["session"].(string)
		quiet.Sweep(ctx)
		if _, err := db.GetUIASession(ctx, gone); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("swept session still stored: %v", err)
		}

		// The registration hook releases the reserved use.
		one := int64(1)
		if err := db.CreateRegistrationToken(ctx, store.RegistrationToken{Token: "once", UsesAllowed: &one}); err != nil {
			t.Fatalf("create token: %v", err)
		}
		if err := db.ReserveRegistrationToken(ctx, "once", time.Now().UnixMilli()); err != nil {
			t.Fatalf("reserve: %v", err)
		}
		if err := db.ReserveRegistrationToken(ctx, "once", time.Now().UnixMilli()); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second reservation of a one-use token: %v", err)
		}
		release := uia.NewManager(db, -time.Second, regtokens.New(db).ReleaseExpired)
		mk(release, map[string]any{"registration_token": "once"})
		release.Sweep(ctx)
		tok, err := db.GetRegistrationToken(ctx, "once")
		if err != nil || tok.Pending != 0 || tok.Completed != 0 || !tok.Valid(time.Now().UnixMilli()) {
			t.Fatalf("token after release: %+v %v", tok, err)
		}
		if err := db.ReserveRegistrationToken(ctx, "once", time.Now().UnixMilli()); err != nil {
			t.Fatalf("reserve after release: %v", err)
		}
	})
}
