package clientapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"maunium.net/go/mautrix"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// wireErr asserts a Matrix error response.
func wireErr(t *testing.T, what string, r testserver.Response, status int, errcode string) {
	t.Helper()
	if r.Status != status || r.JSON["errcode"] != errcode {
		t.Fatalf("%s: got %d %s, want %d %s", what, r.Status, r.Raw, status, errcode)
	}
	if _, ok := r.JSON["error"].(string); !ok {
		t.Fatalf("%s: error response without an error string: %s", what, r.Raw)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s: Content-Type %q, want application/json", what, ct)
	}
}

// wireOK asserts a 200 response.
func wireOK(t *testing.T, what string, r testserver.Response) {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("%s: got %d %s, want 200", what, r.Status, r.Raw)
	}
}

// TestDiscoveryVersions checks the shape of GET /_matrix/client/versions,
// with and without an access token.
func TestDiscoveryVersions(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw-alice")
		for _, token := range []string{"", alice.AccessToken} {
			r := testserver.Send(t, nil, "GET", s.URL+"/_matrix/client/versions", token, nil)
			wireOK(t, "versions", r)
			var shape struct {
				Versions         *[]string        `json:"versions"`
				UnstableFeatures *map[string]bool `json:"unstable_features"`
			}
			if err := json.Unmarshal(r.Raw, &shape); err != nil {
				t.Fatalf("versions: %v: %s", err, r.Raw)
			}
			if shape.Versions == nil || shape.UnstableFeatures == nil {
				t.Fatalf("versions: want a versions array and an unstable_features object, got %s", r.Raw)
			}
			for _, v := range *shape.Versions {
				if !strings.HasPrefix(v, "v1.") && !strings.HasPrefix(v, "r0.") {
					t.Fatalf("versions: odd version %q", v)
				}
			}
			// Clients (Element) refuse servers without v1.1; authenticated
			// media (v1.11) is served.
			if !slices.Contains(*shape.Versions, "v1.1") || !slices.Contains(*shape.Versions, "v1.11") {
				t.Fatalf("versions: %v", *shape.Versions)
			}
		}
		// HEAD is answered like GET.
		if r := testserver.Send(t, nil, "HEAD", s.URL+"/_matrix/client/versions", "", nil); r.Status != http.StatusOK {
			t.Fatalf("HEAD versions: %d", r.Status)
		}
		// And a real client understands it.
		if _, err := s.Client().Versions(context.Background()); err != nil {
			t.Fatalf("mautrix Versions: %v", err)
		}
		// The optional modules' answers of a server without them.
		for path, key := range map[string]string{"/_matrix/client/v3/account/3pid": "threepids", "/_matrix/client/v3/voip/turnServer": "",
			"/_matrix/client/v3/thirdparty/protocols": ""} {
			r := testserver.Send(t, nil, "GET", s.URL+path, alice.AccessToken, nil)
			wireOK(t, path, r)
			if key != "" {
				if list, ok := r.JSON[key].([]any); !ok || len(list) != 0 {
					t.Fatalf("%s: %s", path, r.Raw)
				}
			}
		}
	})
}

// TestDiscoveryWellKnownClient checks /.well-known/matrix/client, derived
// from the listener and configured.
func TestDiscoveryWellKnownClient(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		r := testserver.Send(t, nil, "GET", s.URL+"/.well-known/matrix/client", "", nil)
		wireOK(t, "well-known client", r)
		hs, _ := r.JSON["m.homeserver"].(map[string]any)
		if base, _ := hs["base_url"].(string); !strings.HasPrefix(base, "http://127.0.0.1:") {
			t.Fatalf("well-known client: %s", r.Raw)
		}
		if r.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("well-known client without CORS: %v", r.Header)
		}
	})
	testserver.EachEngine(t, func(c *config.Config) {
		c.WellKnown.ClientBaseURL = "https://matrix.hs1.test"
	}, func(t *testing.T, s *testserver.Server) {
		r := testserver.Send(t, nil, "GET", s.URL+"/.well-known/matrix/client", "", nil)
		wireOK(t, "well-known client", r)
		hs, _ := r.JSON["m.homeserver"].(map[string]any)
		if hs["base_url"] != "https://matrix.hs1.test" {
			t.Fatalf("well-known client: %s", r.Raw)
		}
	})
}

// TestDiscoveryWellKnownServer checks /.well-known/matrix/server: 404
// without federation delegation, m.server when configured.
func TestDiscoveryWellKnownServer(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		r := testserver.Send(t, nil, "GET", s.URL+"/.well-known/matrix/server", "", nil)
		wireErr(t, "well-known server", r, http.StatusNotFound, "M_NOT_FOUND")
	})
	testserver.EachEngine(t, func(c *config.Config) {
		c.WellKnown.Server = "matrix.hs1.test:443"
	}, func(t *testing.T, s *testserver.Server) {
		r := testserver.Send(t, nil, "GET", s.URL+"/.well-known/matrix/server", "", nil)
		wireOK(t, "well-known server", r)
		if r.JSON["m.server"] != "matrix.hs1.test:443" || len(r.JSON) != 1 {
			t.Fatalf("well-known server: %s", r.Raw)
		}
	})
}

// TestDiscoveryCapabilities checks GET /capabilities.
func TestDiscoveryCapabilities(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		r := testserver.Send(t, nil, "GET", s.URL+"/_matrix/client/v3/capabilities", "", nil)
		wireErr(t, "capabilities without token", r, http.StatusUnauthorized, "M_MISSING_TOKEN")

		alice := s.Register("alice", "pw-alice")
		caps, err := alice.Capabilities(ctx)
		if err != nil {
			t.Fatalf("capabilities: %v", err)
		}
		if caps.ChangePassword == nil || !caps.ChangePassword.Enabled {
			t.Fatalf("m.change_password: %+v", caps.ChangePassword)
		}
		if caps.RoomVersions == nil || caps.RoomVersions.Default != "12" {
			t.Fatalf("m.room_versions: %+v", caps.RoomVersions)
		}
		if len(caps.RoomVersions.Available) != 12 {
			t.Fatalf("m.room_versions.available: %+v", caps.RoomVersions.Available)
		}
		for v := 1; v <= 12; v++ {
			if st := caps.RoomVersions.Available[strconv.Itoa(v)]; st != mautrix.CapRoomVersionStable {
				t.Fatalf("room version %d: %q, want stable", v, st)
			}
		}

		// The raw body too: capabilities are under "capabilities".
		r = testserver.Send(t, nil, "GET", s.URL+"/_matrix/client/v3/capabilities", alice.AccessToken, nil)
		wireOK(t, "capabilities", r)
		c, _ := r.JSON["capabilities"].(map[string]any)
		cp, _ := c["m.change_password"].(map[string]any)
		if cp["enabled"] != true {
			t.Fatalf("capabilities: %s", r.Raw)
		}
		// The legacy r0 prefix serves it as well.
		wireOK(t, "r0 capabilities", testserver.Send(t, nil, "GET", s.URL+"/_matrix/client/r0/capabilities", alice.AccessToken, nil))
	})
}

func wireAssertCORS(t *testing.T, what string, h http.Header) {
	t.Helper()
	if got := h.Get("Access-Control-Allow-Origin"); got != "*" {
		t.Fatalf("%s: Access-Control-Allow-Origin %q", what, got)
	}
	methods := h.Get("Access-Control-Allow-Methods")
	for _, m := range []string{"GET", "POST", "PUT", "DELETE", "OPTIONS"} {
		if !strings.Contains(methods, m) {
			t.Fatalf("%s: Access-Control-Allow-Methods %q lacks %s", what, methods, m)
		}
	}
	allowed := h.Get("Access-Control-Allow-Headers")
	for _, name := range []string{"X-Requested-With", "Content-Type", "Authorization"} {
		if !strings.Contains(allowed, name) {
			t.Fatalf("%s: Access-Control-Allow-Headers %q lacks %s", what, allowed, name)
		}
	}
}

// TestHTTPCORSOnEveryResponse checks that successes and every kind of
// error carry the CORS headers.
func TestHTTPCORSOnEveryResponse(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw-alice")
		cases := []struct {
			name, method, path, token string
			body                      any
			status                    int
		}{
			{"versions", "GET", "/_matrix/client/versions", "", nil, 200},
			{"authenticated", "GET", "/_matrix/client/v3/devices", alice.AccessToken, nil, 200},
			{"unknown path", "GET", "/_matrix/client/v3/nope", "", nil, 404},
			{"root", "GET", "/", "", nil, 404},
			{"wrong method", "DELETE", "/_matrix/client/versions", "", nil, 405},
			{"missing token", "GET", "/_matrix/client/v3/devices", "", nil, 401},
			{"bad token", "GET", "/_matrix/client/v3/devices", "not-a-token", nil, 401},
			{"not json", "POST", "/_matrix/client/v3/login", "", "not json", 400},
			{"wrong password", "POST", "/_matrix/client/v3/login", "", authPasswordLogin("alice", "nope"), 403},
			{"not found", "GET", "/_matrix/client/v3/profile/@nobody:hs1.test", "", nil, 404},
		}
		for _, c := range cases {
			r := testserver.Send(t, nil, c.method, s.URL+c.path, c.token, c.body)
			if r.Status != c.status {
				t.Fatalf("%s: status %d %s, want %d", c.name, r.Status, r.Raw, c.status)
			}
			wireAssertCORS(t, c.name, r.Header)
		}
	})
}

// TestHTTPOptionsPreflight checks that OPTIONS succeeds on any path,
// authenticated or unknown, without a token.
func TestHTTPOptionsPreflight(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		for _, path := range []string{
			"/_matrix/client/versions",
			"/_matrix/client/v3/login",
			"/_matrix/client/v3/devices",
			"/_matrix/client/v3/devices/SOMEDEVICE",
			"/_matrix/client/v3/profile/@alice:hs1.test/displayname",
			"/_matrix/client/v3/no/such/endpoint",
			"/not-matrix-at-all",
		} {
			r := testserver.Send(t, nil, "OPTIONS", s.URL+path, "", nil,
				"Origin", "https://app.example", "Access-Control-Request-Method", "PUT",
				"Access-Control-Request-Headers", "authorization, content-type")
			if r.Status < 200 || r.Status > 299 {
				t.Fatalf("OPTIONS %s: %d %s", path, r.Status, r.Raw)
			}
			wireAssertCORS(t, "OPTIONS "+path, r.Header)
		}
	})
}

// TestHTTPUnrecognized checks 404 and 405 M_UNRECOGNIZED.
func TestHTTPUnrecognized(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw-alice")
		for _, path := range []string{"/_matrix/client/v3/nope", "/_matrix/client/v99/login", "/", "/_matrix/federation/v1/nope"} {
			wireErr(t, "GET "+path, testserver.Send(t, nil, "GET", s.URL+path, "", nil), http.StatusNotFound, "M_UNRECOGNIZED")
		}
		// Unknown paths are unrecognized even with a valid token.
		wireErr(t, "authenticated unknown", testserver.Send(t, nil, "GET", s.URL+"/_matrix/client/v3/nope", alice.AccessToken, nil),
			http.StatusNotFound, "M_UNRECOGNIZED")

		r := testserver.Send(t, nil, "POST", s.URL+"/_matrix/client/versions", "", "{}")
		wireErr(t, "POST versions", r, http.StatusMethodNotAllowed, "M_UNRECOGNIZED")
		if allow := r.Header.Get("Allow"); !strings.Contains(allow, "GET") {
			t.Fatalf("405 Allow header %q lacks GET", allow)
		}
		// Wrong method on an authenticated path: 405 before any auth.
		r = testserver.Send(t, nil, "PATCH", s.URL+"/_matrix/client/v3/devices", "", "{}")
		wireErr(t, "PATCH devices", r, http.StatusMethodNotAllowed, "M_UNRECOGNIZED")
		r = testserver.Send(t, nil, "POST", s.URL+"/_matrix/client/v3/devices/X", alice.AccessToken, "{}")
		wireErr(t, "POST devices/X", r, http.StatusMethodNotAllowed, "M_UNRECOGNIZED")
		for _, m := range []string{"GET", "PUT", "DELETE"} {
			if !strings.Contains(r.Header.Get("Allow"), m) {
				t.Fatalf("Allow %q lacks %s", r.Header.Get("Allow"), m)
			}
		}
	})
}

// TestHTTPBodyLimit checks 413 M_TOO_LARGE for bodies over
// http.max_json_body_bytes, on unauthenticated and authenticated routes.
func TestHTTPBodyLimit(t *testing.T) {
	testserver.EachEngine(t, func(c *config.Config) {
		c.HTTP.MaxJSONBodyBytes = 2048
	}, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw-alice")

		big := authPasswordLogin("alice", "pw-alice")
		big["padding"] = strings.Repeat("x", 4096)
		wireErr(t, "big login", testserver.Send(t, nil, "POST", s.URL+"/_matrix/client/v3/login", "", big), http.StatusRequestEntityTooLarge, "M_TOO_LARGE")

		// Just under the limit is read and processed.
		small := authPasswordLogin("alice", "pw-alice")
		small["padding"] = strings.Repeat("x", 1800)
		wireOK(t, "login under the limit", testserver.Send(t, nil, "POST", s.URL+"/_matrix/client/v3/login", "", small))

		url := s.URL + "/_matrix/client/v3/profile/" + s.UserID("alice") + "/displayname"
		r := testserver.Send(t, nil, "PUT", url, alice.AccessToken, map[string]any{"displayname": strings.Repeat("y", 3000)})
		wireErr(t, "big profile", r, http.StatusRequestEntityTooLarge, "M_TOO_LARGE")
	})
}

// TestHTTPBadJSON checks the M_NOT_JSON / M_BAD_JSON split.
func TestHTTPBadJSON(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw-alice")
		login := s.URL + "/_matrix/client/v3/login"
		profile := s.URL + "/_matrix/client/v3/profile/" + s.UserID("alice") + "/displayname"
		cases := []struct {
			name, url, token string
			body             any
			errcode          string
		}{
			{"not json", login, "", "not json", "M_NOT_JSON"},
			{"truncated", login, "", `{"type": "m.login.password"`, "M_NOT_JSON"},
			{"empty", login, "", "", "M_NOT_JSON"},
			{"invalid utf-8", login, "", []byte("{\"type\": \"m.login.password\", \"password\": \"\xff\xfe\"}"), "M_NOT_JSON"},
			{"array", login, "", `[{"type": "m.login.password"}]`, "M_BAD_JSON"},
			{"string", login, "", `"m.login.password"`, "M_BAD_JSON"},
			{"number", login, "", `5`, "M_BAD_JSON"},
			{"wrong field type", login, "", `{"type": 5}`, "M_BAD_JSON"},
			{"authenticated not json", profile, alice.AccessToken, "not json", "M_NOT_JSON"},
			{"authenticated invalid utf-8", profile, alice.AccessToken, []byte("{\"displayname\": \"\xc3\x28\"}"), "M_NOT_JSON"},
			{"authenticated array", profile, alice.AccessToken, `["displayname"]`, "M_BAD_JSON"},
		}
		for _, c := range cases {
			method := "POST"
			if c.url == profile {
				method = "PUT"
			}
			wireErr(t, c.name, testserver.Send(t, nil, method, c.url, c.token, c.body), http.StatusBadRequest, c.errcode)
		}
		// Nothing invalid reached storage: the display name is still the
		// localpart registration gave it.
		dn, err := alice.GetOwnDisplayName(context.Background())
		if err != nil || dn.DisplayName != "alice" {
			t.Fatalf("displayname after bad writes: %+v %v", dn, err)
		}
	})
}

// TestHTTPAccessTokens checks how the access token is found and the
// errors for missing, malformed and unknown tokens.
func TestHTTPAccessTokens(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw-alice")
		devices := s.URL + "/_matrix/client/v3/devices"

		wireErr(t, "no token", testserver.Send(t, nil, "GET", devices, "", nil), http.StatusUnauthorized, "M_MISSING_TOKEN")
		wireErr(t, "basic auth", testserver.Send(t, nil, "GET", devices, "", nil, "Authorization", "Basic YWxpY2U6cHc="),
			http.StatusUnauthorized, "M_MISSING_TOKEN")
		r := testserver.Send(t, nil, "GET", devices, "myl_unknown", nil)
		wireErr(t, "unknown token", r, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
		if r.JSON["soft_logout"] != false {
			t.Fatalf("unknown token: soft_logout should be false: %s", r.Raw)
		}

		wireOK(t, "bearer", testserver.Send(t, nil, "GET", devices, alice.AccessToken, nil))
		wireOK(t, "query parameter", testserver.Send(t, nil, "GET", devices+"?access_token="+alice.AccessToken, "", nil))
		wireErr(t, "unknown query token", testserver.Send(t, nil, "GET", devices+"?access_token=nope", "", nil),
			http.StatusUnauthorized, "M_UNKNOWN_TOKEN")

		// mautrix sees the same errors.
		anon := s.Client()
		if _, err := anon.GetDevicesInfo(context.Background()); !errors.Is(err, mautrix.MMissingToken) {
			t.Fatalf("mautrix without token: %v", err)
		}
	})
}

// TestHTTPRateLimitLogin checks that the login bucket answers 429
// M_LIMIT_EXCEEDED with retry_after_ms and Retry-After once spent, and
// that a spoofed X-Forwarded-For does not escape it.
func TestHTTPRateLimitLogin(t *testing.T) {
	testserver.EachEngine(t, func(c *config.Config) {
		c.RateLimit.Enabled = true
		c.RateLimit.Login = config.RateLimitBucket{PerSecond: 0.001, Burst: 2}
	}, func(t *testing.T, s *testserver.Server) {
		s.Register("alice", "pw-alice")
		login := s.URL + "/_matrix/client/v3/login"
		wireOK(t, "login 1", testserver.Send(t, nil, "POST", login, "", authPasswordLogin("alice", "pw-alice")))
		// A failed attempt draws from the bucket as well.
		wireErr(t, "login 2", testserver.Send(t, nil, "POST", login, "", authPasswordLogin("alice", "wrong")), http.StatusForbidden, "M_FORBIDDEN")

		r := testserver.Send(t, nil, "POST", login, "", authPasswordLogin("alice", "pw-alice"))
		wireErr(t, "login 3", r, http.StatusTooManyRequests, "M_LIMIT_EXCEEDED")
		ms, ok := r.JSON["retry_after_ms"].(float64)
		if !ok || ms <= 0 {
			t.Fatalf("retry_after_ms: %s", r.Raw)
		}
		secs, err := strconv.Atoi(r.Header.Get("Retry-After"))
		if err != nil || secs < 1 {
			t.Fatalf("Retry-After %q", r.Header.Get("Retry-After"))
		}
		wireAssertCORS(t, "429", r.Header)

		// X-Forwarded-For is not trusted by default.
		r = testserver.Send(t, nil, "POST", login, "", authPasswordLogin("alice", "pw-alice"), "X-Forwarded-For", "203.0.113.7")
		wireErr(t, "login with X-Forwarded-For", r, http.StatusTooManyRequests, "M_LIMIT_EXCEEDED")

		// mautrix reports it as M_LIMIT_EXCEEDED too.
		_, err = s.Client().Login(context.Background(), &mautrix.ReqLogin{
			Type:       mautrix.AuthTypePassword,
			Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"},
			Password:   "pw-alice",
		})
		if !errors.Is(err, mautrix.MLimitExceeded) {
			t.Fatalf("mautrix login: %v, want M_LIMIT_EXCEEDED", err)
		}

		// Other endpoints are unaffected.
		wireOK(t, "versions", testserver.Send(t, nil, "GET", s.URL+"/_matrix/client/versions", "", nil))
		wireOK(t, "login flows", testserver.Send(t, nil, "GET", login, "", nil))
	})
}

// TestHTTPRateLimitOff checks that with rate limiting off (the test
// default) many logins in a row all succeed.
func TestHTTPRateLimitOff(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		s.Register("alice", "pw-alice")
		for i := range 20 {
			r := testserver.Send(t, nil, "POST", s.URL+"/_matrix/client/v3/login", "", authPasswordLogin("alice", "pw-alice"))
			if r.Status != http.StatusOK {
				t.Fatalf("login %d: %d %s", i+1, r.Status, r.Raw)
			}
		}
	})
}
