package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// wantMx asserts err is a Matrix error with the status and errcode.
func wantMx(t *testing.T, what string, err error, status int, code string) {
	t.Helper()
	e, ok := mxerr.As(err)
	if !ok || e.Status != status || e.Code != code {
		t.Fatalf("%s: got %v, want %d %s", what, err, status, code)
	}
}

func TestDecodeObject(t *testing.T) {
	type target struct {
		Name  string `json:"name"`
		Count int    `json:"count"`
	}
	for _, c := range []struct {
		name, raw string
		code      string // "" for success
	}{
		{"object", `{"name": "x", "count": 2}`, ""},
		{"whitespace around", " \n\t{\"name\": \"x\"}\n ", ""},
		{"unknown fields are ignored", `{"other": [1, 2]}`, ""},
		{"not json", `not json`, "M_NOT_JSON"},
		{"truncated", `{"name": "x"`, "M_NOT_JSON"},
		{"trailing garbage", `{"name": "x"} {}`, "M_NOT_JSON"},
		{"invalid utf-8 in a string", "{\"name\": \"\xff\"}", "M_NOT_JSON"},
		{"overlong utf-8", "{\"name\": \"\xc0\xaf\"}", "M_NOT_JSON"},
		{"array", `[{"name": "x"}]`, "M_BAD_JSON"},
		{"string", `"x"`, "M_BAD_JSON"},
		{"number", `5`, "M_BAD_JSON"},
		{"null", `null`, "M_BAD_JSON"},
		{"wrong field type", `{"count": "two"}`, "M_BAD_JSON"},
		{"wrong nested type", `{"name": {"a": 1}}`, "M_BAD_JSON"},
	} {
		var v target
		err := httpapi.DecodeObject([]byte(c.raw), &v)
		if c.code == "" {
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			continue
		}
		wantMx(t, c.name, err, http.StatusBadRequest, c.code)
	}

	var v struct {
		Count int `json:"count"`
	}
	err := httpapi.DecodeObject([]byte(`{"count": "two"}`), &v)
	if e, _ := mxerr.As(err); e == nil || !strings.Contains(e.Message, "count") {
		t.Fatalf("a type error should name the field: %v", err)
	}
	var m map[string]json.RawMessage
	if err := httpapi.DecodeObject([]byte(`{"a": [1, {"b": null}]}`), &m); err != nil || string(m["a"]) != `[1, {"b": null}]` {
		t.Fatalf("raw map: %v %v", m, err)
	}
}

func TestReadJSON(t *testing.T) {
	req := func(body string) *http.Request {
		return httptest.NewRequest(http.MethodPost, "/x", strings.NewReader(body))
	}
	var v map[string]any
	if err := httpapi.ReadJSON(req(`{"a": 1}`), &v); err != nil || v["a"] != 1.0 {
		t.Fatalf("ReadJSON: %v %v", v, err)
	}
	wantMx(t, "empty body", httpapi.ReadJSON(req(""), &v), http.StatusBadRequest, "M_NOT_JSON")
	wantMx(t, "blank body", httpapi.ReadJSON(req(" \n "), &v), http.StatusBadRequest, "M_NOT_JSON")
	wantMx(t, "array", httpapi.ReadJSON(req("[]"), &v), http.StatusBadRequest, "M_BAD_JSON")

	v = nil
	if err := httpapi.ReadOptionalJSON(req(""), &v); err != nil || v != nil {
		t.Fatalf("optional empty: %v %v", v, err)
	}
	if err := httpapi.ReadOptionalJSON(req("  "), &v); err != nil {
		t.Fatalf("optional blank: %v", err)
	}
	wantMx(t, "optional not json", httpapi.ReadOptionalJSON(req("nope"), &v), http.StatusBadRequest, "M_NOT_JSON")

	// Over the limit: M_TOO_LARGE, whatever the content.
	for _, body := range []string{`{"a": "` + strings.Repeat("x", 100) + `"}`, strings.Repeat("not json ", 20)} {
		r := req(body)
		r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, 64)
		wantMx(t, "too large", httpapi.ReadJSON(r, &v), http.StatusRequestEntityTooLarge, "M_TOO_LARGE")
	}
	r := req(`{"a": "exactly under"}`)
	r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, 64)
	if err := httpapi.ReadJSON(r, &v); err != nil {
		t.Fatalf("under the limit: %v", err)
	}
}

func TestWriteError(t *testing.T) {
	rec := httptest.NewRecorder()
	httpapi.WriteError(rec, errors.New("database exploded: secret details"))
	if rec.Code != 500 || strings.Contains(rec.Body.String(), "secret") {
		t.Fatalf("internal error: %d %s", rec.Code, rec.Body)
	}
	var body map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &body)
	if body["errcode"] != "M_UNKNOWN" {
		t.Fatalf("internal error: %s", rec.Body)
	}

	rec = httptest.NewRecorder()
	httpapi.WriteError(rec, mxerr.LimitExceeded(1500))
	if rec.Code != 429 || rec.Header().Get("Retry-After") != "2" {
		t.Fatalf("429: %d Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	rec = httptest.NewRecorder()
	httpapi.WriteError(rec, mxerr.LimitExceeded(10))
	if rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("Retry-After for 10ms: %q", rec.Header().Get("Retry-After"))
	}
	// Wrapped Matrix errors keep their code.
	rec = httptest.NewRecorder()
	httpapi.WriteError(rec, errors.Join(errors.New("context"), mxerr.NotFound("gone")))
	if rec.Code != 404 || !strings.Contains(rec.Body.String(), "M_NOT_FOUND") {
		t.Fatalf("wrapped: %d %s", rec.Code, rec.Body)
	}
}

func TestAccessToken(t *testing.T) {
	for _, c := range []struct {
		name, header, query string
		token               string
		present             bool
	}{
		{"none", "", "", "", false},
		{"bearer", "Bearer abc", "", "abc", true},
		{"bearer with spaces", "Bearer  abc ", "", "abc", true},
		{"query", "", "access_token=q1", "q1", true},
		{"basic", "Basic YWxpY2U6cHc=", "", "", true},
		{"lowercase scheme", "bearer abc", "", "", true},
		{"no scheme", "abc", "", "", true},
		{"empty query", "", "access_token=", "", false},
	} {
		target := "/x"
		if c.query != "" {
			target += "?" + c.query
		}
		r := httptest.NewRequest(http.MethodGet, target, nil)
		if c.header != "" {
			r.Header.Set("Authorization", c.header)
		}
		token, present, err := httpapi.AccessToken(r)
		if err != nil || token != c.token || present != c.present {
			t.Fatalf("%s: got %q %v %v, want %q %v", c.name, token, present, err, c.token, c.present)
		}
	}
	// Both a header and the query parameter (even empty), or two
	// headers: refused, as Synapse does, rather than one of them chosen.
	for _, c := range []struct {
		name, query string
		headers     []string
	}{
		{"header and query", "access_token=q1", []string{"Bearer h1"}},
		{"header and empty query", "access_token=", []string{"Bearer h1"}},
		{"two headers", "", []string{"Bearer h1", "Bearer h2"}},
	} {
		r := httptest.NewRequest(http.MethodGet, "/x?"+c.query, nil)
		for _, h := range c.headers {
			r.Header.Add("Authorization", h)
		}
		_, _, err := httpapi.AccessToken(r)
		if e, ok := mxerr.As(err); !ok || e.Code != "M_MISSING_TOKEN" || e.Status != http.StatusUnauthorized {
			t.Fatalf("%s: got %v, want 401 M_MISSING_TOKEN", c.name, err)
		}
	}
}

// fakeLimiter records the keys it is asked about and refuses a bucket
// once it has given out its allowance.
type fakeLimiter struct {
	mu    sync.Mutex
	keys  []string
	allow int
}

func (l *fakeLimiter) Allow(bucket, key string) (bool, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.keys = append(l.keys, bucket+"/"+key)
	if l.allow <= 0 {
		return false, 2500
	}
	l.allow--
	return true, 0
}

func (l *fakeLimiter) last() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.keys) == 0 {
		return ""
	}
	return l.keys[len(l.keys)-1]
}

func authenticate(_ context.Context, token string, _ *http.Request, _ bool) (*httpapi.Caller, error) {
	switch token {
	case "alice":
		return &httpapi.Caller{UserID: "@alice:hs.test", Localpart: "alice", DeviceID: "DEV"}, nil
	case "guest":
		return &httpapi.Caller{UserID: "@123:hs.test", Localpart: "123", IsGuest: true}, nil
	}
	return nil, mxerr.UnknownToken("Unrecognised access token")
}

// testRouter builds a router with a handful of routes exercising each
// feature, wrapped in the middleware.
func testRouter(limiter httpapi.RateLimiter, stack httpapi.StackOptions) http.Handler {
	deps := httpapi.Deps{Authenticate: authenticate, MaxBodyBytes: 1024, Logger: quiet}
	if limiter != nil {
		deps.Limiter = limiter
	}
	rt := httpapi.NewRouter(deps)
	who := func(r *http.Request, c *httpapi.Caller) (any, error) {
		if c == nil {
			return map[string]any{"user": nil, "ip": httpapi.ClientIP(r)}, nil
		}
		return map[string]any{"user": c.UserID, "ip": httpapi.ClientIP(r)}, nil
	}
	rt.Add(httpapi.Route{Method: "GET", Path: "/none", Handler: who})
	rt.Add(httpapi.Route{Method: "GET", Path: "/required", Auth: httpapi.AuthRequired, Handler: who})
	rt.Add(httpapi.Route{Method: "GET", Path: "/guests", Auth: httpapi.AuthRequired, AllowGuest: true, Handler: who})
	rt.Add(httpapi.Route{Method: "GET", Path: "/optional", Auth: httpapi.AuthOptional, Handler: who})
	rt.Add(httpapi.Route{Method: "GET", Path: "/items/{id}", Handler: func(r *http.Request, _ *httpapi.Caller) (any, error) {
		return map[string]string{"id": r.PathValue("id")}, nil
	}})
	rt.Add(httpapi.Route{Method: "PUT", Path: "/items/{id}", Handler: func(r *http.Request, _ *httpapi.Caller) (any, error) {
		var body map[string]any
		if err := httpapi.ReadJSON(r, &body); err != nil {
			return nil, err
		}
		return &httpapi.Response{Status: http.StatusCreated, Body: body}, nil
	}})
	rt.Add(httpapi.Route{Method: "POST", Path: "/upload", MaxBodyBytes: 8192, Handler: func(r *http.Request, _ *httpapi.Caller) (any, error) {
		var body map[string]any
		return map[string]any{}, httpapi.ReadJSON(r, &body)
	}})
	rt.Add(httpapi.Route{Method: "POST", Path: "/limited", Auth: httpapi.AuthOptional, RateLimit: "login", Handler: who})
	rt.Add(httpapi.Route{Method: "GET", Path: "/panic", Handler: func(*http.Request, *httpapi.Caller) (any, error) {
		panic("boom")
	}})
	rt.Add(httpapi.Route{Method: "GET", Path: "/internal", Handler: func(*http.Request, *httpapi.Caller) (any, error) {
		return nil, errors.New("disk on fire")
	}})
	rt.Add(httpapi.Route{Method: "GET", Path: "/raw", Raw: func(w http.ResponseWriter, _ *http.Request, _ *httpapi.Caller) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "raw body")
	}})
	if stack.Logger == nil {
		stack.Logger = quiet
	}
	return httpapi.Wrap(rt, stack)
}

type result struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func serve(t *testing.T, h http.Handler, method, target, body string, headers ...string) result {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, target, rd)
	r.RemoteAddr = "192.0.2.10:41234"
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	res := result{status: rec.Code, header: rec.Header(), raw: rec.Body.String()}
	if strings.HasPrefix(res.raw, "{") {
		if err := json.Unmarshal(rec.Body.Bytes(), &res.body); err != nil {
			t.Fatalf("%s %s: %v: %s", method, target, err, res.raw)
		}
	}
	return res
}

func (r result) want(t *testing.T, what string, status int, code string) {
	t.Helper()
	if r.status != status || (code != "" && r.body["errcode"] != code) {
		t.Fatalf("%s: got %d %s, want %d %s", what, r.status, r.raw, status, code)
	}
	if code != "" && r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("%s: Content-Type %q", what, r.header.Get("Content-Type"))
	}
}

func TestRouterUnrecognized(t *testing.T) {
	h := testRouter(nil, httpapi.StackOptions{})
	serve(t, h, "GET", "/nope", "").want(t, "unknown path", 404, "M_UNRECOGNIZED")
	serve(t, h, "GET", "/", "").want(t, "root", 404, "M_UNRECOGNIZED")
	serve(t, h, "GET", "/items", "").want(t, "prefix of a pattern", 404, "M_UNRECOGNIZED")
	serve(t, h, "GET", "/items/a/b", "").want(t, "longer than a pattern", 404, "M_UNRECOGNIZED")

	r := serve(t, h, "DELETE", "/items/1", "")
	r.want(t, "wrong method", 405, "M_UNRECOGNIZED")
	if got := r.header.Get("Allow"); got != "GET, PUT, OPTIONS" {
		t.Fatalf("Allow %q", got)
	}
	r = serve(t, h, "POST", "/none", "{}")
	r.want(t, "wrong method", 405, "M_UNRECOGNIZED")
	if got := r.header.Get("Allow"); got != "GET, OPTIONS" {
		t.Fatalf("Allow %q", got)
	}
	// 405 comes before authentication.
	serve(t, h, "POST", "/required", "{}").want(t, "405 without token", 405, "M_UNRECOGNIZED")

	// HEAD is served by GET routes.
	serve(t, h, "HEAD", "/items/7", "").want(t, "HEAD", 200, "")
	r = serve(t, h, "GET", "/items/7", "")
	if r.status != 200 || r.body["id"] != "7" {
		t.Fatalf("path value: %d %s", r.status, r.raw)
	}
	r = serve(t, h, "PUT", "/items/7", `{"k": "v"}`)
	if r.status != http.StatusCreated || r.body["k"] != "v" {
		t.Fatalf("*Response status: %d %s", r.status, r.raw)
	}
	r = serve(t, h, "GET", "/raw", "")
	if r.status != 200 || r.raw != "raw body" || r.header.Get("Content-Type") != "text/plain" {
		t.Fatalf("raw route: %d %q %v", r.status, r.raw, r.header)
	}
}

func TestRouterDuplicateRoutePanics(t *testing.T) {
	rt := httpapi.NewRouter(httpapi.Deps{Logger: quiet})
	h := func(*http.Request, *httpapi.Caller) (any, error) { return nil, nil }
	rt.Add(httpapi.Route{Method: "GET", Path: "/a", Handler: h})
	rt.Add(httpapi.Route{Method: "PUT", Path: "/a", Handler: h})
	defer func() {
		if recover() == nil {
			t.Fatal("a duplicate route should panic")
		}
	}()
	rt.Add(httpapi.Route{Method: "GET", Path: "/a", Handler: h})
}

func TestRouterAuth(t *testing.T) {
	h := testRouter(nil, httpapi.StackOptions{})
	serve(t, h, "GET", "/required", "").want(t, "no token", 401, "M_MISSING_TOKEN")
	serve(t, h, "GET", "/required", "", "Authorization", "Basic YWxpY2U6cHc=").want(t, "malformed header", 401, "M_MISSING_TOKEN")
	serve(t, h, "GET", "/required", "", "Authorization", "Bearer nope").want(t, "unknown token", 401, "M_UNKNOWN_TOKEN")
	serve(t, h, "GET", "/required?access_token=nope", "").want(t, "unknown query token", 401, "M_UNKNOWN_TOKEN")

	r := serve(t, h, "GET", "/required", "", "Authorization", "Bearer alice")
	if r.status != 200 || r.body["user"] != "@alice:hs.test" {
		t.Fatalf("bearer: %d %s", r.status, r.raw)
	}
	r = serve(t, h, "GET", "/required?access_token=alice", "")
	if r.status != 200 || r.body["user"] != "@alice:hs.test" {
		t.Fatalf("query: %d %s", r.status, r.raw)
	}

	// Guests only where allowed.
	serve(t, h, "GET", "/required", "", "Authorization", "Bearer guest").want(t, "guest", 403, "M_GUEST_ACCESS_FORBIDDEN")
	if r := serve(t, h, "GET", "/guests", "", "Authorization", "Bearer guest"); r.status != 200 || r.body["user"] != "@123:hs.test" {
		t.Fatalf("guest allowed: %d %s", r.status, r.raw)
	}
	// Optional auth: anonymous works, a token is used, a bad token fails.
	if r := serve(t, h, "GET", "/optional", ""); r.status != 200 || r.body["user"] != nil {
		t.Fatalf("optional anonymous: %d %s", r.status, r.raw)
	}
	if r := serve(t, h, "GET", "/optional", "", "Authorization", "Bearer alice"); r.status != 200 || r.body["user"] != "@alice:hs.test" {
		t.Fatalf("optional with token: %d %s", r.status, r.raw)
	}
	serve(t, h, "GET", "/optional", "", "Authorization", "Bearer nope").want(t, "optional bad token", 401, "M_UNKNOWN_TOKEN")
	// AuthNone routes ignore tokens entirely.
	if r := serve(t, h, "GET", "/none", "", "Authorization", "Bearer nope"); r.status != 200 || r.body["user"] != nil {
		t.Fatalf("none with a bad token: %d %s", r.status, r.raw)
	}
}

func TestRouterBodyLimit(t *testing.T) {
	h := testRouter(nil, httpapi.StackOptions{})
	big := `{"k": "` + strings.Repeat("x", 2000) + `"}`
	serve(t, h, "PUT", "/items/1", big).want(t, "over the default limit", 413, "M_TOO_LARGE")
	serve(t, h, "POST", "/upload", big).want(t, "under the route's limit", 200, "")
	serve(t, h, "POST", "/upload", `{"k": "`+strings.Repeat("x", 9000)+`"}`).want(t, "over the route's limit", 413, "M_TOO_LARGE")
}

func TestRouterErrors(t *testing.T) {
	h := testRouter(nil, httpapi.StackOptions{})
	r := serve(t, h, "GET", "/internal", "")
	r.want(t, "internal error", 500, "M_UNKNOWN")
	if strings.Contains(r.raw, "disk on fire") {
		t.Fatalf("internal error details leaked: %s", r.raw)
	}
}

func TestWrapPanicRecovery(t *testing.T) {
	srv := httptest.NewServer(testRouter(nil, httpapi.StackOptions{}))
	defer srv.Close()
	get := func(path string) (int, http.Header, map[string]any) {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer res.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(res.Body).Decode(&body)
		return res.StatusCode, res.Header, body
	}
	for range 3 {
		status, header, body := get("/panic")
		if status != 500 || body["errcode"] != "M_UNKNOWN" {
			t.Fatalf("panic: %d %v", status, body)
		}
		if header.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("panic response without CORS: %v", header)
		}
		if status, _, body := get("/items/9"); status != 200 || body["id"] != "9" {
			t.Fatalf("after a panic: %d %v", status, body)
		}
	}
}

func TestWrapCORSAndOptions(t *testing.T) {
	h := testRouter(nil, httpapi.StackOptions{})
	check := func(what string, r result, origin string) {
		t.Helper()
		if got := r.header.Get("Access-Control-Allow-Origin"); got != origin {
			t.Fatalf("%s: Allow-Origin %q, want %q", what, got, origin)
		}
		if got := r.header.Get("Access-Control-Allow-Methods"); got != "GET, POST, PUT, DELETE, OPTIONS" {
			t.Fatalf("%s: Allow-Methods %q", what, got)
		}
		if got := r.header.Get("Access-Control-Allow-Headers"); got != "X-Requested-With, Content-Type, Authorization" {
			t.Fatalf("%s: Allow-Headers %q", what, got)
		}
	}
	for _, c := range []struct{ method, path string }{
		{"GET", "/none"}, {"GET", "/nope"}, {"DELETE", "/none"}, {"GET", "/required"},
		{"GET", "/internal"}, {"OPTIONS", "/required"}, {"OPTIONS", "/nope/at/all"}, {"OPTIONS", "/panic"},
	} {
		r := serve(t, h, c.method, c.path, "")
		check(c.method+" "+c.path, r, "*")
		if c.method == "OPTIONS" && (r.status < 200 || r.status > 299) {
			t.Fatalf("OPTIONS %s: %d", c.path, r.status)
		}
	}
	h = testRouter(nil, httpapi.StackOptions{CORSOrigin: "https://app.example"})
	check("configured origin", serve(t, h, "GET", "/none", ""), "https://app.example")
}

func TestClientIPForwardedFor(t *testing.T) {
	plain := testRouter(nil, httpapi.StackOptions{})
	trusting := testRouter(nil, httpapi.StackOptions{TrustForwardedFor: true})
	xff := []string{"X-Forwarded-For", "203.0.113.5, 10.0.0.1"}

	if r := serve(t, plain, "GET", "/none", ""); r.body["ip"] != "192.0.2.10" {
		t.Fatalf("remote address: %s", r.raw)
	}
	if r := serve(t, plain, "GET", "/none", "", xff...); r.body["ip"] != "192.0.2.10" {
		t.Fatalf("X-Forwarded-For honoured without trust: %s", r.raw)
	}
	if r := serve(t, trusting, "GET", "/none", "", xff...); r.body["ip"] != "203.0.113.5" {
		t.Fatalf("X-Forwarded-For with trust: %s", r.raw)
	}
	if r := serve(t, trusting, "GET", "/none", ""); r.body["ip"] != "192.0.2.10" {
		t.Fatalf("trusting without the header: %s", r.raw)
	}
	// Outside the middleware ClientIP falls back to the remote address.
	req := httptest.NewRequest("GET", "/", nil)
	req.RemoteAddr = "198.51.100.4:999"
	if ip := httpapi.ClientIP(req); ip != "198.51.100.4" {
		t.Fatalf("ClientIP outside Wrap: %q", ip)
	}
}

func TestRouterRateLimit(t *testing.T) {
	lim := &fakeLimiter{allow: 3}
	h := testRouter(lim, httpapi.StackOptions{TrustForwardedFor: true})

	serve(t, h, "POST", "/limited", "{}").want(t, "anonymous", 200, "")
	if got := lim.last(); got != "login/ip:192.0.2.10" {
		t.Fatalf("anonymous key %q", got)
	}
	serve(t, h, "POST", "/limited", "{}", "X-Forwarded-For", "203.0.113.9").want(t, "forwarded", 200, "")
	if got := lim.last(); got != "login/ip:203.0.113.9" {
		t.Fatalf("forwarded key %q", got)
	}
	serve(t, h, "POST", "/limited", "{}", "Authorization", "Bearer alice").want(t, "user", 200, "")
	if got := lim.last(); got != "login/user:@alice:hs.test" {
		t.Fatalf("user key %q", got)
	}

	r := serve(t, h, "POST", "/limited", "{}")
	r.want(t, "spent", 429, "M_LIMIT_EXCEEDED")
	if r.body["retry_after_ms"] != 2500.0 || r.header.Get("Retry-After") != "3" {
		t.Fatalf("429: %s Retry-After %q", r.raw, r.header.Get("Retry-After"))
	}
	// Routes without a bucket never ask the limiter.
	n := len(lim.keys)
	serve(t, h, "GET", "/none", "").want(t, "unlimited route", 200, "")
	if len(lim.keys) != n {
		t.Fatalf("the limiter was asked about an unlimited route")
	}
	// An unknown token fails authentication before drawing from the bucket.
	serve(t, h, "POST", "/limited", "{}", "Authorization", "Bearer nope").want(t, "bad token", 401, "M_UNKNOWN_TOKEN")
	if len(lim.keys) != n {
		t.Fatalf("the limiter was asked about an unauthenticated request")
	}
}

func TestWrapMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := testRouter(nil, httpapi.StackOptions{Metrics: httpapi.NewMetrics(reg)})
	serve(t, h, "GET", "/items/1", "")
	serve(t, h, "GET", "/items/2", "")
	serve(t, h, "GET", "/nope/1", "")
	serve(t, h, "GET", "/nope/2", "")
	serve(t, h, "OPTIONS", "/whatever", "")
	serve(t, h, "GET", "/required", "")
	serve(t, h, "GET", "/panic", "")

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	sawLatency := false
	for _, f := range families {
		switch f.GetName() {
		case "myelin_http_requests_total":
			for _, m := range f.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				counts[labels["endpoint"]+" "+labels["code"]] += m.GetCounter().GetValue()
			}
		case "myelin_http_request_duration_seconds":
			sawLatency = len(f.GetMetric()) > 0
		}
	}
	want := map[string]float64{
		"GET /items/{id} 200":   2,
		"unrecognized 404":      2,
		"OPTIONS 204":           1,
		"GET /required 401":     1,
		"GET /panic 500":        1,
		"GET /items/{id} 404":   0,
		"GET /nope/{whatever} ": 0,
	}
	for k, v := range want {
		if counts[k] != v {
			t.Fatalf("requests_total[%s] = %v, want %v (all: %v)", k, counts[k], v, counts)
		}
	}
	if len(counts) != 5 {
		t.Fatalf("unexpected series: %v", counts)
	}
	if !sawLatency {
		t.Fatal("no latency histogram")
	}
}
