package clientapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// authPasswordLogin is the body of an m.login.password login by user
// identifier.
func authPasswordLogin(user, password string) map[string]any {
	return map[string]any{
		"type":       "m.login.password",
		"identifier": map[string]any{"type": "m.id.user", "user": user},
		"password":   password,
	}
}

// authUIAPassword is the "auth" object of an m.login.password UIA stage.
func authUIAPassword(session, user, password string) map[string]any {
	a := authPasswordLogin(user, password)
	if session != "" {
		a["session"] = session
	}
	return a
}

// authFlows reads the stages of each flow of a UIA challenge.
func authFlows(t *testing.T, body map[string]any) [][]string {
	t.Helper()
	raw, _ := json.Marshal(body["flows"])
	var flows []struct {
		Stages []string `json:"stages"`
	}
	if err := json.Unmarshal(raw, &flows); err != nil {
		t.Fatalf("flows %s: %v", raw, err)
	}
	out := make([][]string, len(flows))
	for i, f := range flows {
		out[i] = f.Stages
	}
	return out
}

// authChallenge makes the first, auth-less request of a UIA operation and
// checks it is the m.login.password challenge, returning the session.
func authChallenge(t *testing.T, s *testserver.Server, method, path, token string, body map[string]any) string {
	t.Helper()
	var raw any
	if body != nil {
		raw = body
	}
	status, resp := s.Do(t, method, path, token, raw)
	if status != http.StatusUnauthorized {
		t.Fatalf("%s %s without auth: status %d, want 401 (body %v)", method, path, status, resp)
	}
	if _, has := resp["errcode"]; has {
		t.Fatalf("%s %s: first UIA challenge has an errcode: %v", method, path, resp)
	}
	if flows := authFlows(t, resp); !reflect.DeepEqual(flows, [][]string{{"m.login.password"}}) {
		t.Fatalf("%s %s: flows %v, want [[m.login.password]]", method, path, flows)
	}
	session, _ := resp["session"].(string)
	if session == "" {
		t.Fatalf("%s %s: challenge without session: %v", method, path, resp)
	}
	return session
}

// authWhoami calls /account/whoami with a token ("" for none).
func authWhoami(t *testing.T, s *testserver.Server, token string) (status int, body map[string]any) {
	t.Helper()
	return s.Do(t, http.MethodGet, "/_matrix/client/v3/account/whoami", token, nil)
}

// authWantToken fails unless token is accepted as userID's.
func authWantToken(t *testing.T, s *testserver.Server, what, token, userID string) {
	t.Helper()
	status, body := authWhoami(t, s, token)
	if status != http.StatusOK || body["user_id"] != userID {
		t.Fatalf("%s: whoami %d %v, want 200 for %s", what, status, body, userID)
	}
}

// authWantRevoked fails unless token is refused with M_UNKNOWN_TOKEN and
// the given soft_logout.
func authWantRevoked(t *testing.T, s *testserver.Server, what, token string, softLogout bool) {
	t.Helper()
	status, body := authWhoami(t, s, token)
	testserver.WantError(t, what, status, body, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	if body["soft_logout"] != softLogout {
		t.Fatalf("%s: soft_logout %v, want %v (body %v)", what, body["soft_logout"], softLogout, body)
	}
}

func TestLoginFlows(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		status, body := s.Do(t, http.MethodGet, "/_matrix/client/v3/login", "", nil)
		if status != http.StatusOK {
			t.Fatalf("GET /login: %d %v", status, body)
		}
		flows, _ := body["flows"].([]any)
		types := map[string]map[string]any{}
		for _, f := range flows {
			m, _ := f.(map[string]any)
			typ, _ := m["type"].(string)
			types[typ] = m
		}
		if _, ok := types["m.login.password"]; !ok {
			t.Errorf("flows %v lack m.login.password", flows)
		}
		tok, ok := types["m.login.token"]
		if !ok {
			t.Fatalf("flows %v lack m.login.token", flows)
		}
		if tok["get_login_token"] != true {
			t.Errorf("m.login.token flow %v: get_login_token is not true", tok)
		}
		// The legacy prefix answers the same, and mautrix reads it.
		resp, err := s.Client().GetLoginFlows(context.Background())
		if err != nil || !resp.HasFlow(mautrix.AuthTypePassword) || !resp.HasFlow(mautrix.AuthTypeToken) {
			t.Fatalf("mautrix GetLoginFlows: %+v %v", resp, err)
		}
		status, r0 := s.Do(t, http.MethodGet, "/_matrix/client/r0/login", "", nil)
		if status != http.StatusOK || !reflect.DeepEqual(r0, body) {
			t.Fatalf("GET r0/login: %d %v, want %v", status, r0, body)
		}
	})
}

func TestPasswordLogin(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		s.Register("alice", "alice password")
		s.Register("bob", "bob password")
		alice, bob := s.UserID("alice"), s.UserID("bob")

		cases := []struct {
			name string
			body map[string]any
			want string
		}{
			{"localpart", authPasswordLogin("alice", "alice password"), alice},
			{"full user ID", authPasswordLogin(alice, "alice password"), alice},
			{"deprecated user field", map[string]any{"type": "m.login.password", "user": "alice", "password": "alice password"}, alice},
			{"deprecated user field with user ID", map[string]any{"type": "m.login.password", "user": alice, "password": "alice password"}, alice},
			{"upper-case localpart", authPasswordLogin("BOB", "bob password"), bob},
			{"mixed-case user ID", authPasswordLogin("@BoB:hs1.test", "bob password"), bob},
		}
		seen := map[string]bool{}
		for _, c := range cases {
			status, body := s.Do(t, http.MethodPost, "/_matrix/client/v3/login", "", c.body)
			if status != http.StatusOK {
				t.Fatalf("%s: status %d (body %v)", c.name, status, body)
			}
			if body["user_id"] != c.want {
				t.Fatalf("%s: user_id %v, want %s", c.name, body["user_id"], c.want)
			}
			token, _ := body["access_token"].(string)
			device, _ := body["device_id"].(string)
			if token == "" || device == "" {
				t.Fatalf("%s: no access_token or device_id: %v", c.name, body)
			}
			if seen[token] || seen[device] {
				t.Fatalf("%s: access token or device ID reused: %v", c.name, body)
			}
			seen[token], seen[device] = true, true
			if _, has := body["refresh_token"]; has {
				t.Fatalf("%s: refresh_token without asking: %v", c.name, body)
			}
			if _, has := body["expires_in_ms"]; has {
				t.Fatalf("%s: expires_in_ms for a non-refreshable token: %v", c.name, body)
			}
			status, who := authWhoami(t, s, token)
			if status != http.StatusOK || who["user_id"] != c.want || who["device_id"] != device {
				t.Fatalf("%s: whoami %d %v", c.name, status, who)
			}
		}

		// Through mautrix, with a chosen display name for the new device.
		cli := s.Client()
		resp, err := cli.Login(ctx, &mautrix.ReqLogin{
			Type:                     mautrix.AuthTypePassword,
			Identifier:               mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "Alice"},
			Password:                 "alice password",
			InitialDeviceDisplayName: "phone",
			StoreCredentials:         true,
		})
		if err != nil || resp.UserID.String() != alice {
			t.Fatalf("mautrix login: %+v %v", resp, err)
		}
		if resp.WellKnown == nil || resp.WellKnown.Homeserver.BaseURL == "" {
			t.Fatalf("login response lacks well_known.m.homeserver.base_url: %+v", resp)
		}
		d, err := cli.GetDeviceInfo(ctx, resp.DeviceID)
		if err != nil || d.DisplayName != "phone" {
			t.Fatalf("new device: %+v %v", d, err)
		}
		devices, err := cli.GetDevicesInfo(ctx)
		// Registration, four alice logins above, this one.
		if err != nil || len(devices.Devices) != 6 {
			t.Fatalf("alice's devices: %+v %v, want 6", devices, err)
		}
	})
}

func TestPasswordLoginErrors(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		s.Register("alice", "alice password")
		cases := []struct {
			name   string
			body   any
			status int
			code   string
		}{
			{"wrong password", authPasswordLogin("alice", "wrong"), 403, "M_FORBIDDEN"},
			{"empty password", authPasswordLogin("alice", ""), 403, "M_FORBIDDEN"},
			{"unknown user", authPasswordLogin("nobody", "alice password"), 403, "M_FORBIDDEN"},
			{"unknown user ID", authPasswordLogin("@nobody:hs1.test", "alice password"), 403, "M_FORBIDDEN"},
			{"user ID of another server", authPasswordLogin("@alice:other.test", "alice password"), 403, "M_FORBIDDEN"},
			{"unknown login type", map[string]any{"type": "m.login.magic", "identifier": map[string]any{"type": "m.id.user", "user": "alice"}}, 400, "M_UNKNOWN"},
			{"missing identifier", map[string]any{"type": "m.login.password", "password": "alice password"}, 400, "M_MISSING_PARAM"},
			{"identifier without user", map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user"}, "password": "alice password"}, 400, "M_MISSING_PARAM"},
			{"third-party identifier", map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.thirdparty", "medium": "email", "address": "alice@example.org"}, "password": "alice password"}, 400, ""},
			{"phone identifier", map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.phone", "country": "GB", "phone": "123"}, "password": "alice password"}, 400, ""},
			{"token login without token", map[string]any{"type": "m.login.token"}, 400, "M_MISSING_PARAM"},
			{"unknown login token", map[string]any{"type": "m.login.token", "token": "not a token"}, 403, "M_FORBIDDEN"},
			{"malformed JSON", `{"type": "m.login.password",`, 400, "M_NOT_JSON"},
			{"empty body", ``, 400, "M_NOT_JSON"},
			{"JSON array", `[]`, 400, "M_BAD_JSON"},
			{"password of the wrong type", `{"type":"m.login.password","identifier":{"type":"m.id.user","user":"alice"},"password":12}`, 400, "M_BAD_JSON"},
		}
		for _, c := range cases {
			status, body := s.Do(t, http.MethodPost, "/_matrix/client/v3/login", "", c.body)
			if c.code == "" {
				// Only the status is pinned down: the spec names no errcode.
				if status != c.status || body["errcode"] == nil {
					t.Errorf("%s: %d %v, want %d with an errcode", c.name, status, body, c.status)
				}
				continue
			}
			if status != c.status || body["errcode"] != c.code {
				t.Errorf("%s: %d %v, want %d %s", c.name, status, body, c.status, c.code)
			}
			if _, has := body["access_token"]; has {
				t.Errorf("%s: a refused login handed out a token: %v", c.name, body)
			}
		}
		// None of the failures created a device.
		cli := s.Client()
		if _, err := cli.Login(context.Background(), &mautrix.ReqLogin{
			Type: mautrix.AuthTypePassword, Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"},
			Password: "alice password", StoreCredentials: true,
		}); err != nil {
			t.Fatalf("login: %v", err)
		}
		devices, err := cli.GetDevicesInfo(context.Background())
		if err != nil || len(devices.Devices) != 2 {
			t.Fatalf("devices: %+v %v, want the registration's and this login's", devices, err)
		}
	})
}

func TestLoginReusesDevice(t *testing.T) {
	testserver.EachEngine(t, func(c *config.Config) { c.WellKnown.ClientBaseURL = "https://matrix.hs1.test" }, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "alice password")
		first := authPasswordLogin("alice", "alice password")
		first["device_id"] = "LAPTOP"
		first["initial_device_display_name"] = "laptop"
		first["refresh_token"] = true
		status, body1 := s.Do(t, http.MethodPost, "/_matrix/client/v3/login", "", first)
		if status != http.StatusOK || body1["device_id"] != "LAPTOP" {
			t.Fatalf("first login: %d %v", status, body1)
		}
		_, refresh1 := authPair(t, "first login", body1, s.Config.Auth.RefreshableAccessTokenLifetime)
		wk, _ := body1["well_known"].(map[string]any)
		hs, _ := wk["m.homeserver"].(map[string]any)
		if hs["base_url"] != "https://matrix.hs1.test" {
			t.Fatalf("well_known %v, want m.homeserver.base_url https://matrix.hs1.test", body1["well_known"])
		}
		token1, _ := body1["access_token"].(string)
		authWantToken(t, s, "first token", token1, s.UserID("alice"))

		again := authPasswordLogin("alice", "alice password")
		again["device_id"] = "LAPTOP"
		again["initial_device_display_name"] = "ignored for an existing device"
		status, body2 := s.Do(t, http.MethodPost, "/_matrix/client/v3/login", "", again)
		if status != http.StatusOK || body2["device_id"] != "LAPTOP" {
			t.Fatalf("second login: %d %v", status, body2)
		}
		token2, _ := body2["access_token"].(string)
		if token2 == "" || token2 == token1 {
			t.Fatalf("second login gave token %q (first %q)", token2, token1)
		}
		authWantRevoked(t, s, "old token of the reused device", token1, false)
		status, body := authRefresh(t, s, refresh1)
		testserver.WantError(t, "old refresh token of the reused device", status, body, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
		authWantToken(t, s, "new token of the reused device", token2, s.UserID("alice"))

		devices, err := alice.GetDevicesInfo(ctx)
		if err != nil {
			t.Fatalf("devices: %v", err)
		}
		var ids []string
		for _, d := range devices.Devices {
			ids = append(ids, d.DeviceID.String())
		}
		if len(ids) != 2 || !slices.Contains(ids, "LAPTOP") || !slices.Contains(ids, alice.DeviceID.String()) {
			t.Fatalf("devices %v, want the registration's and one LAPTOP", ids)
		}
		d, err := alice.GetDeviceInfo(ctx, "LAPTOP")
		if err != nil || d.DisplayName != "laptop" {
			t.Fatalf("reused device: %+v %v, want display name kept", d, err)
		}
		// The registration's device was not touched.
		authWantToken(t, s, "registration token", alice.AccessToken, s.UserID("alice"))
	})
}

// authRefresh calls /refresh with a refresh token.
func authRefresh(t *testing.T, s *testserver.Server, refreshToken string) (int, map[string]any) {
	t.Helper()
	return s.Do(t, http.MethodPost, "/_matrix/client/v3/refresh", "", map[string]any{"refresh_token": refreshToken})
}

// authPair reads an access and refresh token pair from a login or
// refresh response, checking expires_in_ms.
func authPair(t *testing.T, what string, body map[string]any, lifetime time.Duration) (access, refresh string) {
	t.Helper()
	access, _ = body["access_token"].(string)
	refresh, _ = body["refresh_token"].(string)
	if access == "" || refresh == "" {
		t.Fatalf("%s: missing access_token or refresh_token: %v", what, body)
	}
	if body["expires_in_ms"] != float64(lifetime.Milliseconds()) {
		t.Fatalf("%s: expires_in_ms %v, want %d", what, body["expires_in_ms"], lifetime.Milliseconds())
	}
	return access, refresh
}

func TestRefreshTokens(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		s.Register("alice", "alice password")
		aliceID := s.UserID("alice")
		lifetime := s.Config.Auth.RefreshableAccessTokenLifetime

		login := authPasswordLogin("alice", "alice password")
		login["refresh_token"] = true
		status, body := s.Do(t, http.MethodPost, "/_matrix/client/v3/login", "", login)
		if status != http.StatusOK {
			t.Fatalf("login: %d %v", status, body)
		}
		device := body["device_id"]
		a1, r1 := authPair(t, "login", body, lifetime)
		authWantToken(t, s, "first access token", a1, aliceID)

		// mautrix parses the same fields.
		cli := s.Client()
		resp, err := cli.Login(context.Background(), &mautrix.ReqLogin{
			Type: mautrix.AuthTypePassword, Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"},
			Password: "alice password", RefreshToken: true,
		})
		if err != nil || resp.RefreshToken == "" || resp.ExpiresInMS != lifetime.Milliseconds() {
			t.Fatalf("mautrix refreshable login: %+v %v", resp, err)
		}

		// First refresh: a new pair for the same device.
		status, body = authRefresh(t, s, r1)
		if status != http.StatusOK {
			t.Fatalf("refresh: %d %v", status, body)
		}
		a2, r2 := authPair(t, "refresh", body, lifetime)
		if a2 == a1 || r2 == r1 {
			t.Fatalf("refresh returned the old tokens: %v", body)
		}

		// Retrying r1 before the new pair was used works and retires the
		// unused pair.
		status, body = authRefresh(t, s, r1)
		if status != http.StatusOK {
			t.Fatalf("retried refresh: %d %v", status, body)
		}
		a3, r3 := authPair(t, "retried refresh", body, lifetime)
		if a3 == a2 || r3 == r2 {
			t.Fatalf("retried refresh returned the unused pair again: %v", body)
		}
		authWantRevoked(t, s, "access token of the replaced pair", a2, false)
		status, body = authRefresh(t, s, r2)
		testserver.WantError(t, "refresh token of the replaced pair", status, body, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")

		// Using the new access token retires r1 for good.
		status, who := authWhoami(t, s, a3)
		if status != http.StatusOK || who["user_id"] != aliceID || who["device_id"] != device {
			t.Fatalf("whoami with the refreshed token: %d %v, want %s on %v", status, who, aliceID, device)
		}
		status, body = authRefresh(t, s, r1)
		testserver.WantError(t, "refresh token whose successor was used", status, body, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
		if body["soft_logout"] == true {
			t.Fatalf("spent refresh token: soft_logout true: %v", body)
		}
		// The first access token is gone too: the server may revoke it
		// once refreshed, and this one does.
		authWantRevoked(t, s, "access token refreshed away", a1, false)

		// The chain goes on: r3 refreshes, and refreshing also retires
		// the previous access token.
		status, body = authRefresh(t, s, r3)
		if status != http.StatusOK {
			t.Fatalf("second-generation refresh: %d %v", status, body)
		}
		a4, r4 := authPair(t, "second-generation refresh", body, lifetime)
		authWantToken(t, s, "second-generation access token", a4, aliceID)
		status, body = authRefresh(t, s, r3)
		testserver.WantError(t, "spent refresh token r3", status, body, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")

		// Still one device for the whole chain (plus the registration's
		// and the mautrix login's).
		status, devs := s.Do(t, http.MethodGet, "/_matrix/client/v3/devices", a4, nil)
		if list, _ := devs["devices"].([]any); status != http.StatusOK || len(list) != 3 {
			t.Fatalf("devices: %d %v, want 3", status, devs)
		}

		// Refusals.
		status, body = authRefresh(t, s, "mylr_not-a-token")
		testserver.WantError(t, "unknown refresh token", status, body, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
		if body["soft_logout"] == true {
			t.Fatalf("unknown refresh token: soft_logout true: %v", body)
		}
		status, body = authRefresh(t, s, a4)
		testserver.WantError(t, "access token used as refresh token", status, body, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
		status, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/refresh", "", map[string]any{})
		testserver.WantError(t, "missing refresh_token", status, body, http.StatusBadRequest, "M_MISSING_PARAM")
		status, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/refresh", "", `{"refresh_token":`)
		testserver.WantError(t, "malformed refresh body", status, body, http.StatusBadRequest, "M_NOT_JSON")

		// Logging out revokes the refresh token with the device.
		status, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/logout", a4, map[string]any{})
		if status != http.StatusOK {
			t.Fatalf("logout: %d %v", status, body)
		}
		status, body = authRefresh(t, s, r4)
		testserver.WantError(t, "refresh token of a logged-out device", status, body, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	})
}

func TestRefreshableTokenExpiry(t *testing.T) {
	const lifetime = 500 * time.Millisecond
	testserver.EachEngine(t, func(c *config.Config) { c.Auth.RefreshableAccessTokenLifetime = lifetime }, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "alice password")
		login := authPasswordLogin("alice", "alice password")
		login["refresh_token"] = true
		status, body := s.Do(t, http.MethodPost, "/_matrix/client/v3/login", "", login)
		if status != http.StatusOK {
			t.Fatalf("login: %d %v", status, body)
		}
		issued := time.Now() // the token was issued before this
		access, refresh := authPair(t, "login", body, lifetime)

		time.Sleep(time.Until(issued.Add(lifetime + 100*time.Millisecond)))
		authWantRevoked(t, s, "expired access token", access, true)
		// Tokens issued without a refresh token never expire.
		authWantToken(t, s, "non-refreshable token", alice.AccessToken, s.UserID("alice"))

		status, body = authRefresh(t, s, refresh)
		if status != http.StatusOK {
			t.Fatalf("refresh after expiry: %d %v", status, body)
		}
		fresh, _ := authPair(t, "refresh after expiry", body, lifetime)
		authWantToken(t, s, "refreshed access token", fresh, s.UserID("alice"))

		// A logged-out non-refreshable token is a hard logout.
		if _, err := alice.Logout(context.Background()); err != nil {
			t.Fatalf("logout: %v", err)
		}
		authWantRevoked(t, s, "logged-out token", alice.AccessToken, false)
	})
}

// authGetLoginToken runs /login/get_token through UIA and returns the token.
func authGetLoginToken(t *testing.T, s *testserver.Server, token, user, password string) (string, map[string]any) {
	t.Helper()
	const path = "/_matrix/client/v1/login/get_token"
	session := authChallenge(t, s, http.MethodPost, path, token, map[string]any{})
	status, body := s.Do(t, http.MethodPost, path, token, map[string]any{"auth": authUIAPassword(session, user, password)})
	if status != http.StatusOK {
		t.Fatalf("get_token with auth: %d %v", status, body)
	}
	lt, _ := body["login_token"].(string)
	if lt == "" {
		t.Fatalf("get_token: no login_token: %v", body)
	}
	return lt, body
}

func TestLoginToken(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "alice password")
		const path = "/_matrix/client/v1/login/get_token"

		status, body := s.Do(t, http.MethodPost, path, "", map[string]any{})
		testserver.WantError(t, "get_token without access token", status, body, http.StatusUnauthorized, "M_MISSING_TOKEN")

		// A wrong password keeps the session and says why.
		session := authChallenge(t, s, http.MethodPost, path, alice.AccessToken, nil)
		status, body = s.Do(t, http.MethodPost, path, alice.AccessToken, map[string]any{"auth": authUIAPassword(session, "alice", "wrong")})
		testserver.WantError(t, "get_token with a wrong password", status, body, http.StatusUnauthorized, "M_FORBIDDEN")
		if body["session"] != session {
			t.Fatalf("get_token: session %v after a failed stage, want %s", body["session"], session)
		}

		lt, body := authGetLoginToken(t, s, alice.AccessToken, "alice", "alice password")
		if body["expires_in_ms"] != float64(s.Config.Auth.LoginTokenLifetime.Milliseconds()) {
			t.Fatalf("get_token: expires_in_ms %v, want %d", body["expires_in_ms"], s.Config.Auth.LoginTokenLifetime.Milliseconds())
		}

		// mautrix logs in with it on a new device.
		cli := s.Client()
		resp, err := cli.Login(context.Background(), &mautrix.ReqLogin{Type: mautrix.AuthTypeToken, Token: lt, StoreCredentials: true})
		if err != nil || resp.UserID.String() != s.UserID("alice") || resp.DeviceID == "" || resp.DeviceID == alice.DeviceID {
			t.Fatalf("token login: %+v %v", resp, err)
		}
		if resp.WellKnown == nil || resp.WellKnown.Homeserver.BaseURL == "" {
			t.Fatalf("token login lacks well_known: %+v", resp)
		}
		authWantToken(t, s, "token-login access token", resp.AccessToken, s.UserID("alice"))

		// Once only.
		status, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/login", "", map[string]any{"type": "m.login.token", "token": lt})
		testserver.WantError(t, "second use of a login token", status, body, http.StatusForbidden, "M_FORBIDDEN")

		// Each request issues a new token.
		lt2, _ := authGetLoginToken(t, s, resp.AccessToken, "@alice:hs1.test", "alice password")
		if lt2 == lt {
			t.Fatalf("get_token reissued a spent token")
		}
		status, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/login", "", map[string]any{"type": "m.login.token", "token": lt2, "device_id": "TV"})
		if status != http.StatusOK || body["device_id"] != "TV" || body["user_id"] != s.UserID("alice") {
			t.Fatalf("second token login: %d %v", status, body)
		}
	})
}

func TestLoginTokenExpiry(t *testing.T) {
	const lifetime = 50 * time.Millisecond
	testserver.EachEngine(t, func(c *config.Config) { c.Auth.LoginTokenLifetime = lifetime }, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "alice password")
		lt, body := authGetLoginToken(t, s, alice.AccessToken, "alice", "alice password")
		issued := time.Now() // the token was issued before this
		if body["expires_in_ms"] != float64(lifetime.Milliseconds()) {
			t.Fatalf("expires_in_ms %v, want %d", body["expires_in_ms"], lifetime.Milliseconds())
		}
		time.Sleep(time.Until(issued.Add(lifetime + 20*time.Millisecond)))
		status, body := s.Do(t, http.MethodPost, "/_matrix/client/v3/login", "", map[string]any{"type": "m.login.token", "token": lt})
		testserver.WantError(t, "expired login token", status, body, http.StatusForbidden, "M_FORBIDDEN")
	})
}

func TestLogout(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "alice password")
		status, body := s.Do(t, http.MethodPost, "/_matrix/client/v3/login", "", authPasswordLogin("alice", "alice password"))
		if status != http.StatusOK {
			t.Fatalf("login: %d %v", status, body)
		}
		token, _ := body["access_token"].(string)
		device, _ := body["device_id"].(string)

		status, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/logout", "", nil)
		testserver.WantError(t, "logout without token", status, body, http.StatusUnauthorized, "M_MISSING_TOKEN")

		status, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/logout", token, nil)
		if status != http.StatusOK || len(body) != 0 {
			t.Fatalf("logout: %d %v, want 200 {}", status, body)
		}
		authWantRevoked(t, s, "logged-out token", token, false)
		status, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/logout", token, nil)
		testserver.WantError(t, "second logout", status, body, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")

		devices, err := alice.GetDevicesInfo(ctx)
		if err != nil || len(devices.Devices) != 1 || devices.Devices[0].DeviceID != alice.DeviceID {
			t.Fatalf("devices after logout: %+v %v, want only %s", devices, err, alice.DeviceID)
		}
		if _, err := alice.GetDeviceInfo(ctx, id.DeviceID(device)); err == nil {
			t.Fatalf("logged-out device %s still exists", device)
		}
		authWantToken(t, s, "other device", alice.AccessToken, s.UserID("alice"))
	})
}

func TestLogoutAll(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "alice password")
		bob := s.Register("bob", "bob password")
		second := s.Client()
		if _, err := second.Login(ctx, &mautrix.ReqLogin{
			Type: mautrix.AuthTypePassword, Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"},
			Password: "alice password", StoreCredentials: true,
		}); err != nil {
			t.Fatalf("login: %v", err)
		}
		login := authPasswordLogin("alice", "alice password")
		login["refresh_token"] = true
		status, body := s.Do(t, http.MethodPost, "/_matrix/client/v3/login", "", login)
		if status != http.StatusOK {
			t.Fatalf("refreshable login: %d %v", status, body)
		}
		third, refresh := authPair(t, "refreshable login", body, s.Config.Auth.RefreshableAccessTokenLifetime)

		if _, err := second.LogoutAll(ctx); err != nil {
			t.Fatalf("logout/all: %v", err)
		}
		authWantRevoked(t, s, "first device", alice.AccessToken, false)
		authWantRevoked(t, s, "device that logged out all", second.AccessToken, false)
		authWantRevoked(t, s, "refreshable device", third, false)
		status, body = authRefresh(t, s, refresh)
		testserver.WantError(t, "refresh after logout/all", status, body, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
		// Other users keep their sessions.
		authWantToken(t, s, "bob", bob.AccessToken, s.UserID("bob"))

		// The account itself is fine: a new login has exactly one device.
		fresh := s.Client()
		if _, err := fresh.Login(ctx, &mautrix.ReqLogin{
			Type: mautrix.AuthTypePassword, Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"},
			Password: "alice password", StoreCredentials: true,
		}); err != nil {
			t.Fatalf("login after logout/all: %v", err)
		}
		devices, err := fresh.GetDevicesInfo(ctx)
		if err != nil || len(devices.Devices) != 1 || devices.Devices[0].DeviceID != fresh.DeviceID {
			t.Fatalf("devices after logout/all: %+v %v", devices, err)
		}
	})
}
