package clientapi_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testserver"
)

const (
	regPath      = "/_matrix/client/v3/register"
	regValidity  = "/_matrix/client/v1/register/m.login.registration_token/validity"
	regAdminPath = "/_synapse/admin/v1"
	regSecret    = "register-test-shared-secret"
)

// regChallenge checks the shape of a UIA 401 and returns its session.
func regChallenge(t *testing.T, what string, status int, body map[string]any, stage string, wantCode string) string {
	t.Helper()
	testserver.WantError(t, what, status, body, http.StatusUnauthorized, wantCode)
	flows := authFlows(t, body)
	if len(flows) != 1 || len(flows[0]) != 1 || flows[0][0] != stage {
		t.Fatalf("%s: flows %v, want [[%s]]", what, flows, stage)
	}
	session, _ := body["session"].(string)
	if session == "" {
		t.Fatalf("%s: no session in %v", what, body)
	}
	completed, ok := body["completed"].([]any)
	if !ok || len(completed) != 0 {
		t.Fatalf("%s: completed %v, want []", what, body["completed"])
	}
	if _, ok := body["params"].(map[string]any); !ok {
		t.Fatalf("%s: params %v, want an object", what, body["params"])
	}
	return session
}

// regWithDummy registers through the two rounds of m.login.dummy, with
// extra fields in the second request.
func regWithDummy(t *testing.T, s *testserver.Server, fields map[string]any) (int, map[string]any) {
	t.Helper()
	status, body := s.Do(t, "POST", regPath, "", map[string]any{})
	session := regChallenge(t, "register challenge", status, body, "m.login.dummy", "")
	req := map[string]any{"auth": map[string]any{"type": "m.login.dummy", "session": session}}
	for k, v := range fields {
		req[k] = v
	}
	return s.Do(t, "POST", regPath, "", req)
}

// regNewToken creates a registration token through the admin API.
func regNewToken(t *testing.T, s *testserver.Server, adminToken string, req map[string]any) string {
	t.Helper()
	status, body := s.Do(t, "POST", regAdminPath+"/registration_tokens/new", adminToken, req)
	testserver.WantStatus(t, "new registration token", status, body, http.StatusOK)
	tok, _ := body["token"].(string)
	if tok == "" {
		t.Fatalf("new registration token: %v", body)
	}
	return tok
}

func regValid(t *testing.T, s *testserver.Server, token string) bool {
	t.Helper()
	status, body := s.Do(t, "GET", regValidity+"?token="+url.QueryEscape(token), "", nil)
	testserver.WantStatus(t, "validity of "+token, status, body, http.StatusOK)
	v, ok := body["valid"].(bool)
	if !ok {
		t.Fatalf("validity of %s: %v", token, body)
	}
	return v
}

// regTokenCounts reads pending and completed from the admin API.
func regTokenCounts(t *testing.T, s *testserver.Server, adminToken, token string) (pending, completed float64) {
	t.Helper()
	status, body := s.Do(t, "GET", regAdminPath+"/registration_tokens/"+token, adminToken, nil)
	testserver.WantStatus(t, "get token", status, body, http.StatusOK)
	return body["pending"].(float64), body["completed"].(float64)
}

func regAvailable(t *testing.T, s *testserver.Server, username string) (int, map[string]any) {
	t.Helper()
	return s.Do(t, "GET", "/_matrix/client/v3/register/available?username="+url.QueryEscape(username), "", nil)
}

// TestRegisterDummyFlow covers open registration with m.login.dummy and
// the optional request fields.
func TestRegisterDummyFlow(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()

		// Round one: the challenge; round two: the account.
		status, body := regWithDummy(t, s, map[string]any{"username": "alice", "password": "alice password"})
		testserver.WantStatus(t, "register alice", status, body, http.StatusOK)
		if body["user_id"] != s.UserID("alice") || body["home_server"] != "hs1.test" {
			t.Fatalf("register alice: %v", body)
		}
		token, _ := body["access_token"].(string)
		deviceID, _ := body["device_id"].(string)
		if token == "" || deviceID == "" {
			t.Fatalf("register alice: no access_token or device_id: %v", body)
		}
		if _, ok := body["refresh_token"]; ok {
			t.Fatalf("register alice: refresh_token without asking: %v", body)
		}
		status, who := s.Do(t, "GET", "/_matrix/client/v3/account/whoami", token, nil)
		testserver.WantStatus(t, "whoami", status, who, http.StatusOK)
		if who["user_id"] != s.UserID("alice") || who["device_id"] != deviceID || who["is_guest"] != false {
			t.Fatalf("whoami: %v", who)
		}

		// The session is finished: it cannot register a second account.
		status, body = s.Do(t, "POST", regPath, "", map[string]any{})
		session := regChallenge(t, "challenge", status, body, "m.login.dummy", "")
		auth := map[string]any{"type": "m.login.dummy", "session": session}
		status, body = s.Do(t, "POST", regPath, "", map[string]any{"auth": auth, "username": "bob", "password": "pw"})
		testserver.WantStatus(t, "register bob", status, body, http.StatusOK)
		status, body = s.Do(t, "POST", regPath, "", map[string]any{"auth": auth, "username": "bob2", "password": "pw"})
		testserver.WantError(t, "reuse finished session", status, body, http.StatusBadRequest, "M_UNKNOWN")

		// device_id and initial_device_display_name are honoured.
		status, body = regWithDummy(t, s, map[string]any{
			"username": "carol", "password": "carol password", "device_id": "CAROLPHONE", "initial_device_display_name": "Carol's phone",
		})
		testserver.WantStatus(t, "register carol", status, body, http.StatusOK)
		if body["device_id"] != "CAROLPHONE" {
			t.Fatalf("register carol: device_id %v, want CAROLPHONE", body["device_id"])
		}
		carol := s.Client()
		carol.SetCredentials(id.UserID(s.UserID("carol")), body["access_token"].(string))
		devices, err := carol.GetDevicesInfo(ctx)
		if err != nil || len(devices.Devices) != 1 || devices.Devices[0].DeviceID != "CAROLPHONE" || devices.Devices[0].DisplayName != "Carol's phone" {
			t.Fatalf("carol's devices: %+v %v", devices, err)
		}

		// inhibit_login: the account exists, but no device or token.
		status, body = regWithDummy(t, s, map[string]any{"username": "dave", "password": "dave password", "inhibit_login": true})
		testserver.WantStatus(t, "register dave", status, body, http.StatusOK)
		if body["user_id"] != s.UserID("dave") {
			t.Fatalf("register dave: %v", body)
		}
		for _, k := range []string{"access_token", "device_id", "refresh_token"} {
			if _, ok := body[k]; ok {
				t.Fatalf("register dave with inhibit_login: %s in %v", k, body)
			}
		}
		status, body = regAvailable(t, s, "dave")
		testserver.WantError(t, "dave available", status, body, http.StatusBadRequest, "M_USER_IN_USE")
		status, body = s.Do(t, "POST", "/_matrix/client/v3/login", "", map[string]any{
			"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "dave"}, "password": "dave password",
		})
		testserver.WantStatus(t, "dave login", status, body, http.StatusOK)

		// refresh_token: a refresh token and the access token's lifetime.
		status, body = regWithDummy(t, s, map[string]any{"username": "erin", "password": "erin password", "refresh_token": true})
		testserver.WantStatus(t, "register erin", status, body, http.StatusOK)
		if rt, _ := body["refresh_token"].(string); rt == "" {
			t.Fatalf("register erin: no refresh_token: %v", body)
		}
		wantMS := float64(s.Config.Auth.RefreshableAccessTokenLifetime.Milliseconds())
		if ms, _ := body["expires_in_ms"].(float64); ms != wantMS {
			t.Fatalf("register erin: expires_in_ms %v, want %v", body["expires_in_ms"], wantMS)
		}
		status, body = s.Do(t, "POST", "/_matrix/client/v3/refresh", "", map[string]any{"refresh_token": body["refresh_token"]})
		testserver.WantStatus(t, "refresh erin", status, body, http.StatusOK)

		// The legacy r0 path serves the same endpoint.
		status, body = s.Do(t, "POST", "/_matrix/client/r0/register", "", map[string]any{})
		regChallenge(t, "r0 challenge", status, body, "m.login.dummy", "")
	})
}

// TestRegisterDisabled: with neither open registration nor tokens,
// registration is refused outright.
func TestRegisterDisabled(t *testing.T) {
	closed := func(c *config.Config) { c.Registration.Open, c.Registration.RequireToken = false, false }
	testserver.EachEngine(t, closed, func(t *testing.T, s *testserver.Server) {
		status, body := s.Do(t, "POST", regPath, "", map[string]any{"username": "alice", "password": "pw"})
		testserver.WantError(t, "register", status, body, http.StatusForbidden, "M_FORBIDDEN")
		status, body = s.Do(t, "POST", regPath, "", map[string]any{
			"username": "alice", "password": "pw", "auth": map[string]any{"type": "m.login.dummy"},
		})
		testserver.WantError(t, "register with dummy auth", status, body, http.StatusForbidden, "M_FORBIDDEN")
		// Synapse's rule: no availability answers (and so no user ID
		// enumeration) while registration is closed.
		status, body = regAvailable(t, s, "alice")
		testserver.WantError(t, "available", status, body, http.StatusForbidden, "M_FORBIDDEN")
		status, body = s.Do(t, "POST", "/_matrix/client/v3/login", "", map[string]any{
			"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "alice"}, "password": "pw",
		})
		testserver.WantError(t, "login as the refused user", status, body, http.StatusForbidden, "M_FORBIDDEN")
	})
}

// TestRegisterUsernames covers the username rules and the password check.
func TestRegisterUsernames(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		s.Register("alice", "alice password")

		// A taken name is reported before any authentication...
		status, body := s.Do(t, "POST", regPath, "", map[string]any{"username": "alice", "password": "pw"})
		testserver.WantError(t, "taken, no auth", status, body, http.StatusBadRequest, "M_USER_IN_USE")
		// ...and with it.
		status, body = regWithDummy(t, s, map[string]any{"username": "alice", "password": "pw"})
		testserver.WantError(t, "taken, with auth", status, body, http.StatusBadRequest, "M_USER_IN_USE")

		// As in Synapse, /register lowercases the username: "Alice" is alice.
		status, body = s.Do(t, "POST", regPath, "", map[string]any{"username": "Alice", "password": "pw"})
		testserver.WantError(t, "Alice is alice", status, body, http.StatusBadRequest, "M_USER_IN_USE")
		status, body = regWithDummy(t, s, map[string]any{"username": "BOB", "password": "pw"})
		testserver.WantStatus(t, "BOB registers bob", status, body, http.StatusOK)
		if body["user_id"] != s.UserID("bob") {
			t.Fatalf("BOB registered as %v, want %s", body["user_id"], s.UserID("bob"))
		}
		for _, name := range []string{"al ice", "al!ce", "al:ice", "@alice", "al#ce", "élodie", "_alice", "_", "12345", "0", strings.Repeat("a", 250)} {
			status, body := s.Do(t, "POST", regPath, "", map[string]any{"username": name, "password": "pw"})
			testserver.WantError(t, "username "+name, status, body, http.StatusBadRequest, "M_INVALID_USERNAME")
			status, body = regWithDummy(t, s, map[string]any{"username": name, "password": "pw"})
			testserver.WantError(t, "username "+name+" with auth", status, body, http.StatusBadRequest, "M_INVALID_USERNAME")
		}
		// The allowed punctuation, and digits beside letters, are fine.
		for _, name := range []string{"a.b_c=d-e/f+g", "alice2", "2alice"} {
			status, body := regWithDummy(t, s, map[string]any{"username": name, "password": "pw"})
			testserver.WantStatus(t, "username "+name, status, body, http.StatusOK)
			if body["user_id"] != s.UserID(name) {
				t.Fatalf("username %s: user_id %v", name, body["user_id"])
			}
		}

		// No password: refused once authentication is done, and the
		// completed session can still finish with one.
		status, body = s.Do(t, "POST", regPath, "", map[string]any{"username": "frank"})
		session := regChallenge(t, "challenge without password", status, body, "m.login.dummy", "")
		status, body = s.Do(t, "POST", regPath, "", map[string]any{
			"username": "frank", "auth": map[string]any{"type": "m.login.dummy", "session": session},
		})
		testserver.WantError(t, "no password", status, body, http.StatusBadRequest, "M_MISSING_PARAM")
		status, body = regAvailable(t, s, "frank")
		testserver.WantStatus(t, "frank still available", status, body, http.StatusOK)
		status, body = s.Do(t, "POST", regPath, "", map[string]any{
			"username": "frank", "password": "frank password", "auth": map[string]any{"session": session},
		})
		testserver.WantStatus(t, "finish with password", status, body, http.StatusOK)
		if body["user_id"] != s.UserID("frank") {
			t.Fatalf("frank: %v", body)
		}

		// No username: the server picks one.
		status, body = regWithDummy(t, s, map[string]any{"password": "anon password"})
		testserver.WantStatus(t, "no username", status, body, http.StatusOK)
		userID, _ := body["user_id"].(string)
		if !regexp.MustCompile(`^@[0-9]+:hs1\.test$`).MatchString(userID) {
			t.Fatalf("generated user_id %q", userID)
		}
		status, who := s.Do(t, "GET", "/_matrix/client/v3/account/whoami", body["access_token"].(string), nil)
		testserver.WantStatus(t, "whoami generated", status, who, http.StatusOK)
		if who["user_id"] != userID || who["is_guest"] != false {
			t.Fatalf("whoami generated: %v", who)
		}
		// The generated account logs in with its password.
		status, body = s.Do(t, "POST", "/_matrix/client/v3/login", "", map[string]any{
			"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": userID}, "password": "anon password",
		})
		testserver.WantStatus(t, "generated login", status, body, http.StatusOK)

		// Too long a password is refused before authentication.
		status, body = s.Do(t, "POST", regPath, "", map[string]any{"username": "gina", "password": strings.Repeat("p", 513)})
		testserver.WantError(t, "long password", status, body, http.StatusBadRequest, "M_WEAK_PASSWORD")
	})
}

// TestRegisterAvailable covers GET /register/available.
func TestRegisterAvailable(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		s.Register("alice", "alice password")
		avail, err := s.Client().RegisterAvailable(ctx, "bob")
		if err != nil || !avail.Available {
			t.Fatalf("bob available: %+v %v", avail, err)
		}
		status, body := regAvailable(t, s, "bob")
		testserver.WantStatus(t, "bob", status, body, http.StatusOK)
		if body["available"] != true {
			t.Fatalf("bob: %v", body)
		}
		status, body = regAvailable(t, s, "alice")
		testserver.WantError(t, "alice", status, body, http.StatusBadRequest, "M_USER_IN_USE")
		for _, name := range []string{"Alice", "al ice", "_bob", "1234"} {
			status, body = regAvailable(t, s, name)
			testserver.WantError(t, name, status, body, http.StatusBadRequest, "M_INVALID_USERNAME")
		}
		status, body = s.Do(t, "GET", "/_matrix/client/v3/register/available", "", nil)
		testserver.WantError(t, "no username", status, body, http.StatusBadRequest, "M_MISSING_PARAM")
	})
}

// TestRegistrationTokens covers m.login.registration_token, the
// validity endpoint and the token's use counts.
func TestRegistrationTokens(t *testing.T) {
	tokensOnly := func(c *config.Config) {
		c.Registration.Open, c.Registration.RequireToken = false, true
		c.Registration.SharedSecret = regSecret
	}
	testserver.EachEngine(t, tokensOnly, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		admin := s.RegisterAdmin("admin", "admin password").AccessToken
		unlimited := regNewToken(t, s, admin, map[string]any{"token": "unlimited"})
		once := regNewToken(t, s, admin, map[string]any{"token": "once", "uses_allowed": 1})

		// The challenge offers only the token stage; dummy is refused.
		status, body := s.Do(t, "POST", regPath, "", map[string]any{"username": "alice", "password": "pw"})
		session := regChallenge(t, "token challenge", status, body, "m.login.registration_token", "")
		status, body = s.Do(t, "POST", regPath, "", map[string]any{
			"username": "alice", "password": "pw", "auth": map[string]any{"type": "m.login.dummy", "session": session},
		})
		testserver.WantStatus(t, "dummy stage", status, body, http.StatusUnauthorized)
		if _, ok := body["errcode"].(string); !ok {
			t.Fatalf("dummy stage: no errcode: %v", body)
		}

		// Invalid tokens: 401 with the errcode and the challenge.
		for _, bad := range []string{"nosuchtoken", "bad token!", strings.Repeat("x", 65)} {
			status, body = s.Do(t, "POST", regPath, "", map[string]any{
				"username": "alice", "password": "pw",
				"auth": map[string]any{"type": "m.login.registration_token", "token": bad, "session": session},
			})
			testserver.WantError(t, "token "+bad, status, body, http.StatusUnauthorized, "M_UNAUTHORIZED")
			if body["session"] != session || len(authFlows(t, body)) != 1 {
				t.Fatalf("token %s: challenge missing: %v", bad, body)
			}
			if c, ok := body["completed"].([]any); !ok || len(c) != 0 {
				t.Fatalf("token %s: completed %v", bad, body["completed"])
			}
		}
		status, body = s.Do(t, "POST", regPath, "", map[string]any{
			"username": "alice", "password": "pw", "auth": map[string]any{"type": "m.login.registration_token", "session": session},
		})
		testserver.WantError(t, "no token", status, body, http.StatusUnauthorized, "M_MISSING_PARAM")

		// A valid token completes registration in the same session.
		status, body = s.Do(t, "POST", regPath, "", map[string]any{
			"username": "alice", "password": "alice password",
			"auth": map[string]any{"type": "m.login.registration_token", "token": unlimited, "session": session},
		})
		testserver.WantStatus(t, "valid token", status, body, http.StatusOK)
		if body["user_id"] != s.UserID("alice") || body["access_token"] == nil {
			t.Fatalf("valid token: %v", body)
		}
		if p, c := regTokenCounts(t, s, admin, unlimited); p != 0 || c != 1 {
			t.Fatalf("unlimited after one use: pending %v completed %v", p, c)
		}
		if !regValid(t, s, unlimited) {
			t.Fatal("unlimited token invalid after one use")
		}

		// A one-use token registers exactly one account.
		if !regValid(t, s, once) {
			t.Fatal("fresh one-use token not valid")
		}
		registerWithToken := func(username, token string) (int, map[string]any) {
			status, body := s.Do(t, "POST", regPath, "", map[string]any{"username": username, "password": "pw"})
			session := regChallenge(t, "challenge for "+username, status, body, "m.login.registration_token", "")
			return s.Do(t, "POST", regPath, "", map[string]any{
				"username": username, "password": "pw",
				"auth": map[string]any{"type": "m.login.registration_token", "token": token, "session": session},
			})
		}
		status, body = registerWithToken("bob", once)
		testserver.WantStatus(t, "bob with one-use token", status, body, http.StatusOK)
		if regValid(t, s, once) {
			t.Fatal("one-use token still valid after its use")
		}
		status, body = registerWithToken("carol", once)
		testserver.WantError(t, "carol with used token", status, body, http.StatusUnauthorized, "M_UNAUTHORIZED")
		if p, c := regTokenCounts(t, s, admin, once); p != 0 || c != 1 {
			t.Fatalf("one-use token: pending %v completed %v, want 0 and 1", p, c)
		}
		status, body = regAvailable(t, s, "carol")
		testserver.WantStatus(t, "carol not created", status, body, http.StatusOK)

		// An expired token (written straight to the database, since the
		// admin API refuses expiry times in the past) is refused.
		db, err := store.Open(ctx, s.Config.DatabaseURL(), 2)
		if err != nil {
			t.Fatalf("open store: %v", err)
		}
		defer db.Close()
		past := time.Now().Add(-time.Hour).UnixMilli()
		if err := db.CreateRegistrationToken(ctx, store.RegistrationToken{Token: "expired", ExpiryTime: &past}); err != nil {
			t.Fatalf("insert expired token: %v", err)
		}
		if regValid(t, s, "expired") {
			t.Fatal("expired token valid")
		}
		status, body = registerWithToken("dave", "expired")
		testserver.WantError(t, "expired token", status, body, http.StatusUnauthorized, "M_UNAUTHORIZED")
		if p, c := regTokenCounts(t, s, admin, "expired"); p != 0 || c != 0 {
			t.Fatalf("expired token: pending %v completed %v", p, c)
		}

		// A token that expires later is valid until then.
		future := time.Now().Add(time.Hour).UnixMilli()
		later := regNewToken(t, s, admin, map[string]any{"expiry_time": future})
		if !regValid(t, s, later) {
			t.Fatal("token expiring in an hour not valid")
		}
		status, body = registerWithToken("dave", later)
		testserver.WantStatus(t, "dave with unexpired token", status, body, http.StatusOK)

		// The validity endpoint: unknown and malformed tokens are invalid.
		if regValid(t, s, "unknown") || regValid(t, s, "bad token!") || regValid(t, s, strings.Repeat("a", 65)) {
			t.Fatal("unknown or malformed token valid")
		}
		status, body = s.Do(t, "GET", regValidity, "", nil)
		testserver.WantError(t, "validity without token", status, body, http.StatusBadRequest, "M_MISSING_PARAM")

		// A token deleted by the admin is no longer valid.
		status, body = s.Do(t, "DELETE", regAdminPath+"/registration_tokens/"+unlimited, admin, nil)
		testserver.WantStatus(t, "delete unlimited", status, body, http.StatusOK)
		if regValid(t, s, unlimited) {
			t.Fatal("deleted token valid")
		}
		status, body = registerWithToken("erin", unlimited)
		testserver.WantError(t, "deleted token", status, body, http.StatusUnauthorized, "M_UNAUTHORIZED")
	})
}

// TestRegistrationTokenReservedBySession: a token stage completed in a
// session that has not created its account yet holds one of the token's
// uses, so no other registration can take it; the session itself can
// still finish with it, and the use is counted once.
func TestRegistrationTokenReservedBySession(t *testing.T) {
	tokensOnly := func(c *config.Config) {
		c.Registration.Open, c.Registration.RequireToken = false, true
		c.Registration.SharedSecret = regSecret
	}
	testserver.EachEngine(t, tokensOnly, func(t *testing.T, s *testserver.Server) {
		admin := s.RegisterAdmin("admin", "admin password").AccessToken
		once := regNewToken(t, s, admin, map[string]any{"uses_allowed": 1})

		status, body := s.Do(t, "POST", regPath, "", map[string]any{"username": "alice"})
		session := regChallenge(t, "challenge", status, body, "m.login.registration_token", "")
		auth := map[string]any{"type": "m.login.registration_token", "token": once, "session": session}
		// The token stage completes, then the missing password stops the
		// registration: the token is reserved, not used.
		status, body = s.Do(t, "POST", regPath, "", map[string]any{"username": "alice", "auth": auth})
		testserver.WantError(t, "no password", status, body, http.StatusBadRequest, "M_MISSING_PARAM")
		if p, c := regTokenCounts(t, s, admin, once); p != 1 || c != 0 {
			t.Fatalf("reserved: pending %v completed %v, want 1 and 0", p, c)
		}
		if regValid(t, s, once) {
			t.Fatal("reserved one-use token still valid")
		}

		// Another registration cannot take the reserved use.
		status, body = s.Do(t, "POST", regPath, "", map[string]any{"username": "bob", "password": "pw"})
		other := regChallenge(t, "bob challenge", status, body, "m.login.registration_token", "")
		status, body = s.Do(t, "POST", regPath, "", map[string]any{
			"username": "bob", "password": "pw",
			"auth": map[string]any{"type": "m.login.registration_token", "token": once, "session": other},
		})
		testserver.WantError(t, "bob with reserved token", status, body, http.StatusUnauthorized, "M_UNAUTHORIZED")

		// The session is bound to the token it reserved (Synapse's rule).
		unlimited := regNewToken(t, s, admin, map[string]any{})
		status, body = s.Do(t, "POST", regPath, "", map[string]any{
			"username": "alice", "password": "alice password",
			"auth": map[string]any{"type": "m.login.registration_token", "token": unlimited, "session": session},
		})
		testserver.WantError(t, "other token in the session", status, body, http.StatusUnauthorized, "M_INVALID_PARAM")
		if body["session"] != session {
			t.Fatalf("other token in the session: %v", body)
		}
		if p, c := regTokenCounts(t, s, admin, unlimited); p != 0 || c != 0 {
			t.Fatalf("other token: pending %v completed %v, want 0 and 0", p, c)
		}

		// Repeating the stage in the first session does not reserve twice,
		// and the registration then completes.
		status, body = s.Do(t, "POST", regPath, "", map[string]any{"username": "alice", "password": "alice password", "auth": auth})
		testserver.WantStatus(t, "alice finishes", status, body, http.StatusOK)
		if body["user_id"] != s.UserID("alice") {
			t.Fatalf("alice: %v", body)
		}
		if p, c := regTokenCounts(t, s, admin, once); p != 0 || c != 1 {
			t.Fatalf("after registration: pending %v completed %v, want 0 and 1", p, c)
		}
		status, body = s.Do(t, "POST", regPath, "", map[string]any{"username": "carol", "password": "pw", "auth": auth})
		testserver.WantError(t, "finished session reused", status, body, http.StatusBadRequest, "M_UNKNOWN")
	})
}

// TestRegistrationTokenValidityDisabled: the validity endpoint is 403
// when registration is fully disabled, and answers with open registration.
func TestRegistrationTokenValidityDisabled(t *testing.T) {
	closed := func(c *config.Config) { c.Registration.Open, c.Registration.RequireToken = false, false }
	t.Run("disabled", func(t *testing.T) {
		testserver.EachEngine(t, closed, func(t *testing.T, s *testserver.Server) {
			status, body := s.Do(t, "GET", regValidity+"?token=abc", "", nil)
			testserver.WantError(t, "validity, registration disabled", status, body, http.StatusForbidden, "M_FORBIDDEN")
		})
	})
	t.Run("open", func(t *testing.T) {
		testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
			if regValid(t, s, "abc") {
				t.Fatal("unknown token valid with open registration")
			}
		})
	})
}

// TestRegisterExpiredSession: a UIA session past its lifetime is unknown.
func TestRegisterExpiredSession(t *testing.T) {
	const lifetime = 200 * time.Millisecond
	short := func(c *config.Config) { c.Auth.UIASessionLifetime = lifetime }
	testserver.EachEngine(t, short, func(t *testing.T, s *testserver.Server) {
		status, body := s.Do(t, "POST", regPath, "", map[string]any{})
		session := regChallenge(t, "challenge", status, body, "m.login.dummy", "")
		time.Sleep(lifetime + 50*time.Millisecond)
		status, body = s.Do(t, "POST", regPath, "", map[string]any{
			"username": "alice", "password": "pw", "auth": map[string]any{"type": "m.login.dummy", "session": session},
		})
		testserver.WantError(t, "expired session", status, body, http.StatusBadRequest, "M_UNKNOWN")
		status, body = regAvailable(t, s, "alice")
		testserver.WantStatus(t, "alice not created", status, body, http.StatusOK)
	})
}

// TestRegisterGuest covers kind=guest and unknown kinds.
func TestRegisterGuest(t *testing.T) {
	t.Run("guests disallowed", func(t *testing.T) {
		testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
			status, body := s.Do(t, "POST", regPath+"?kind=guest", "", map[string]any{})
			testserver.WantError(t, "guest, guests disallowed", status, body, http.StatusForbidden, "M_FORBIDDEN")
			status, body = s.Do(t, "POST", regPath+"?kind=bogus", "", map[string]any{})
			testserver.WantError(t, "kind=bogus", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
			// kind=user is the default.
			status, body = s.Do(t, "POST", regPath+"?kind=user", "", map[string]any{})
			regChallenge(t, "kind=user", status, body, "m.login.dummy", "")
		})
	})
	guests := func(c *config.Config) { c.Registration.AllowGuests = true }
	t.Run("guests allowed", func(t *testing.T) {
		testserver.EachEngine(t, guests, func(t *testing.T, s *testserver.Server) {
			status, body := s.Do(t, "POST", regPath+"?kind=guest", "", map[string]any{"initial_device_display_name": "guest device"})
			testserver.WantStatus(t, "guest", status, body, http.StatusOK)
			userID, _ := body["user_id"].(string)
			if !regexp.MustCompile(`^@[0-9]+:hs1\.test$`).MatchString(userID) {
				t.Fatalf("guest user_id %q", userID)
			}
			token, _ := body["access_token"].(string)
			if token == "" || body["device_id"] == nil || body["home_server"] != "hs1.test" {
				t.Fatalf("guest: %v", body)
			}
			status, who := s.Do(t, "GET", "/_matrix/client/v3/account/whoami", token, nil)
			testserver.WantStatus(t, "guest whoami", status, who, http.StatusOK)
			if who["user_id"] != userID || who["is_guest"] != true || who["device_id"] != body["device_id"] {
				t.Fatalf("guest whoami: %v", who)
			}
			status, body = s.Do(t, "POST", "/_matrix/client/v3/createRoom", token, map[string]any{})
			testserver.WantError(t, "guest createRoom", status, body, http.StatusForbidden, "M_GUEST_ACCESS_FORBIDDEN")

			// Guests get a fresh user ID each time.
			status, body = s.Do(t, "POST", regPath+"?kind=guest", "", nil)
			testserver.WantStatus(t, "second guest", status, body, http.StatusOK)
			if body["user_id"] == userID {
				t.Fatalf("second guest reused %s", userID)
			}
			status, body = s.Do(t, "POST", regPath+"?kind=bogus", "", map[string]any{})
			testserver.WantError(t, "kind=bogus", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		})
	})
}
