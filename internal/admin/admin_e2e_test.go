package admin_test

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testserver"
)

const (
	admSecret = "admin-test-shared-secret"
	admBase   = "/_synapse/admin/v1"
	admTokens = admBase + "/registration_tokens"
)

// admMAC is Synapse's shared-secret mac, written independently of the
// server's admin.SharedSecretMAC.
func admMAC(secret, nonce, user, password string, isAdmin bool, userType string) string {
	flag := "notadmin"
	if isAdmin {
		flag = "admin"
	}
	msg := nonce + "\x00" + user + "\x00" + password + "\x00" + flag
	if userType != "" {
		msg += "\x00" + userType
	}
	m := hmac.New(sha1.New, []byte(secret))
	m.Write([]byte(msg))
	return hex.EncodeToString(m.Sum(nil))
}

func admNonce(t *testing.T, s *testserver.Server) string {
	t.Helper()
	status, body := s.Do(t, "GET", admBase+"/register", "", nil)
	testserver.WantStatus(t, "nonce", status, body, http.StatusOK)
	nonce, _ := body["nonce"].(string)
	if nonce == "" {
		t.Fatalf("nonce: %v", body)
	}
	return nonce
}

// admRegister registers through the shared secret and returns the response.
func admRegister(t *testing.T, s *testserver.Server, user, password string, isAdmin bool) (int, map[string]any) {
	t.Helper()
	nonce := admNonce(t, s)
	return s.Do(t, "POST", admBase+"/register", "", map[string]any{
		"nonce": nonce, "username": user, "password": password, "admin": isAdmin,
		"mac": admMAC(admSecret, nonce, user, password, isAdmin, ""),
	})
}

// admUserToken registers a user through the shared secret and returns its
// access token.
func admUserToken(t *testing.T, s *testserver.Server, user string, isAdmin bool) string {
	t.Helper()
	status, body := admRegister(t, s, user, user+" password", isAdmin)
	testserver.WantStatus(t, "register "+user, status, body, http.StatusOK)
	token, _ := body["access_token"].(string)
	if token == "" {
		t.Fatalf("register %s: no access_token: %v", user, body)
	}
	return token
}

func withSecret(c *config.Config) {
	c.Registration.SharedSecret = admSecret
	// Shared-secret registration works whatever the public registration.
	c.Registration.Open = false
}

// TestSharedSecretRegistration covers GET/POST /_synapse/admin/v1/register.
func TestSharedSecretRegistration(t *testing.T) {
	t.Run("enabled", func(t *testing.T) { testserver.EachEngine(t, withSecret, sharedSecretEnabled) })
	t.Run("no secret", func(t *testing.T) { testserver.EachEngine(t, nil, sharedSecretDisabled) })
}

func sharedSecretEnabled(t *testing.T, s *testserver.Server) {
	n1, n2 := admNonce(t, s), admNonce(t, s)
	if n1 == n2 {
		t.Fatalf("two nonces are equal: %s", n1)
	}

	// A plain user, with a display name.
	nonce := admNonce(t, s)
	status, body := s.Do(t, "POST", admBase+"/register", "", map[string]any{
		"nonce": nonce, "username": "bob", "password": "bob password", "admin": false, "displayname": "Bob B",
		"mac": admMAC(admSecret, nonce, "bob", "bob password", false, ""),
	})
	testserver.WantStatus(t, "register bob", status, body, http.StatusOK)
	if body["user_id"] != s.UserID("bob") || body["home_server"] != "hs1.test" || body["device_id"] == nil {
		t.Fatalf("register bob: %v", body)
	}
	bob, _ := body["access_token"].(string)
	status, who := s.Do(t, "GET", "/_matrix/client/v3/account/whoami", bob, nil)
	testserver.WantStatus(t, "bob whoami", status, who, http.StatusOK)
	if who["user_id"] != s.UserID("bob") || who["device_id"] != body["device_id"] {
		t.Fatalf("bob whoami: %v", who)
	}
	status, prof := s.Do(t, "GET", "/_matrix/client/v3/profile/"+url.PathEscape(s.UserID("bob")), "", nil)
	testserver.WantStatus(t, "bob profile", status, prof, http.StatusOK)
	if prof["displayname"] != "Bob B" {
		t.Fatalf("bob profile: %v", prof)
	}
	status, body = s.Do(t, "POST", "/_matrix/client/v3/login", "", map[string]any{
		"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "bob"}, "password": "bob password",
	})
	testserver.WantStatus(t, "bob login", status, body, http.StatusOK)
	// Not an admin.
	status, body = s.Do(t, "GET", admTokens, bob, nil)
	testserver.WantError(t, "bob lists tokens", status, body, http.StatusForbidden, "M_FORBIDDEN")

	// An admin can use the admin API.
	root := admUserToken(t, s, "root", true)
	status, body = s.Do(t, "GET", admTokens, root, nil)
	testserver.WantStatus(t, "root lists tokens", status, body, http.StatusOK)
	if _, ok := body["registration_tokens"].([]any); !ok {
		t.Fatalf("root lists tokens: %v", body)
	}

	// Synapse lowercases the username after checking the mac.
	status, body = admRegister(t, s, "Carol", "carol password", false)
	testserver.WantStatus(t, "register Carol", status, body, http.StatusOK)
	if body["user_id"] != s.UserID("carol") {
		t.Fatalf("register Carol: user_id %v, want %s", body["user_id"], s.UserID("carol"))
	}

	// user_type is part of the mac when given.
	nonce = admNonce(t, s)
	status, body = s.Do(t, "POST", admBase+"/register", "", map[string]any{
		"nonce": nonce, "username": "botty", "password": "pw", "user_type": "bot",
		"mac": admMAC(admSecret, nonce, "botty", "pw", false, ""),
	})
	testserver.WantError(t, "user_type outside the mac", status, body, http.StatusForbidden, "M_FORBIDDEN")
	nonce = admNonce(t, s)
	status, body = s.Do(t, "POST", admBase+"/register", "", map[string]any{
		"nonce": nonce, "username": "botty", "password": "pw", "user_type": "bot",
		"mac": admMAC(admSecret, nonce, "botty", "pw", false, "bot"),
	})
	testserver.WantStatus(t, "user_type in the mac", status, body, http.StatusOK)

	// Wrong macs: another secret, or the admin flag not matching.
	for _, tc := range []struct {
		name    string
		mac     func(nonce string) string
		isAdmin bool
	}{
		{"wrong secret", func(n string) string { return admMAC("not the secret", n, "mallory", "pw", false, "") }, false},
		{"admin flag flipped", func(n string) string { return admMAC(admSecret, n, "mallory", "pw", false, "") }, true},
		{"other password", func(n string) string { return admMAC(admSecret, n, "mallory", "other", false, "") }, false},
		{"garbage", func(string) string { return "00" }, false},
	} {
		nonce := admNonce(t, s)
		status, body := s.Do(t, "POST", admBase+"/register", "", map[string]any{
			"nonce": nonce, "username": "mallory", "password": "pw", "admin": tc.isAdmin, "mac": tc.mac(nonce),
		})
		testserver.WantError(t, tc.name, status, body, http.StatusForbidden, "M_FORBIDDEN")
		// The nonce is spent even though the mac was wrong.
		status, body = s.Do(t, "POST", admBase+"/register", "", map[string]any{
			"nonce": nonce, "username": "mallory", "password": "pw", "admin": tc.isAdmin,
			"mac": admMAC(admSecret, nonce, "mallory", "pw", tc.isAdmin, ""),
		})
		testserver.WantStatus(t, tc.name+", nonce again", status, body, http.StatusBadRequest)
	}
	// None of those created mallory: the name is still free.
	status, body = admRegister(t, s, "mallory", "pw", false)
	testserver.WantStatus(t, "mallory after the refusals", status, body, http.StatusOK)

	// A nonce registers one user only.
	nonce = admNonce(t, s)
	req := map[string]any{
		"nonce": nonce, "username": "dave", "password": "pw", "admin": false,
		"mac": admMAC(admSecret, nonce, "dave", "pw", false, ""),
	}
	status, body = s.Do(t, "POST", admBase+"/register", "", req)
	testserver.WantStatus(t, "register dave", status, body, http.StatusOK)
	req["username"], req["mac"] = "dave2", admMAC(admSecret, nonce, "dave2", "pw", false, "")
	status, body = s.Do(t, "POST", admBase+"/register", "", req)
	testserver.WantStatus(t, "reused nonce", status, body, http.StatusBadRequest)

	// A nonce the server never issued.
	status, body = s.Do(t, "POST", admBase+"/register", "", map[string]any{
		"nonce": "deadbeef", "username": "erin", "password": "pw", "mac": admMAC(admSecret, "deadbeef", "erin", "pw", false, ""),
	})
	testserver.WantStatus(t, "unknown nonce", status, body, http.StatusBadRequest)

	// Missing fields.
	nonce = admNonce(t, s)
	status, body = s.Do(t, "POST", admBase+"/register", "", map[string]any{"nonce": nonce, "username": "erin", "password": "pw"})
	testserver.WantError(t, "no mac", status, body, http.StatusBadRequest, "M_MISSING_PARAM")
	status, body = s.Do(t, "POST", admBase+"/register", "", "{not json")
	testserver.WantError(t, "bad json", status, body, http.StatusBadRequest, "M_NOT_JSON")

	// Usernames: taken, invalid.
	status, body = admRegister(t, s, "bob", "pw", false)
	testserver.WantError(t, "bob again", status, body, http.StatusBadRequest, "M_USER_IN_USE")
	status, body = admRegister(t, s, "bad name", "pw", false)
	testserver.WantError(t, "bad name", status, body, http.StatusBadRequest, "M_INVALID_USERNAME")
}

// sharedSecretDisabled: without a secret the API is off.
func sharedSecretDisabled(t *testing.T, s *testserver.Server) {
	status, body := s.Do(t, "GET", admBase+"/register", "", nil)
	testserver.WantError(t, "nonce, no secret", status, body, http.StatusForbidden, "M_FORBIDDEN")
	status, body = s.Do(t, "POST", admBase+"/register", "", map[string]any{
		"nonce": "n", "username": "eve", "password": "pw", "mac": admMAC("", "n", "eve", "pw", false, ""),
	})
	testserver.WantError(t, "register, no secret", status, body, http.StatusForbidden, "M_FORBIDDEN")
}

// admToken is a registration token as the admin API returns it.
type admToken struct {
	Token       string `json:"token"`
	UsesAllowed *int64 `json:"uses_allowed"`
	Pending     int64  `json:"pending"`
	Completed   int64  `json:"completed"`
	ExpiryTime  *int64 `json:"expiry_time"`
}

func admDecodeToken(t *testing.T, body map[string]any) admToken {
	t.Helper()
	for _, k := range []string{"token", "uses_allowed", "pending", "completed", "expiry_time"} {
		if _, ok := body[k]; !ok {
			t.Fatalf("token object lacks %s: %v", k, body)
		}
	}
	raw, _ := json.Marshal(body)
	var tok admToken
	if err := json.Unmarshal(raw, &tok); err != nil {
		t.Fatalf("token object: %v", err)
	}
	return tok
}

func admList(t *testing.T, s *testserver.Server, admin, query string) []string {
	t.Helper()
	status, body := s.Do(t, "GET", admTokens+query, admin, nil)
	testserver.WantStatus(t, "list "+query, status, body, http.StatusOK)
	list, ok := body["registration_tokens"].([]any)
	if !ok {
		t.Fatalf("list %s: %v", query, body)
	}
	var names []string
	for _, e := range list {
		names = append(names, admDecodeToken(t, e.(map[string]any)).Token)
	}
	slices.Sort(names)
	return names
}

func ptr(v int64) *int64 { return &v }

func eqPtr(a, b *int64) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func showPtr(p *int64) string {
	if p == nil {
		return "null"
	}
	return fmt.Sprint(*p)
}

// TestRegistrationTokenAdminAPI covers /_synapse/admin/v1/registration_tokens.
func TestRegistrationTokenAdminAPI(t *testing.T) {
	testserver.EachEngine(t, withSecret, func(t *testing.T, s *testserver.Server) {
		admin := admUserToken(t, s, "root", true)
		user := admUserToken(t, s, "bob", false)
		expiry := time.Now().Add(24 * time.Hour).UnixMilli()

		// Only admins, and only with a token.
		for _, c := range []struct{ method, path string }{
			{"GET", ""}, {"POST", "/new"}, {"GET", "/abc"}, {"PUT", "/abc"}, {"DELETE", "/abc"},
		} {
			var body any
			if c.method != "GET" && c.method != "DELETE" {
				body = map[string]any{}
			}
			status, resp := s.Do(t, c.method, admTokens+c.path, user, body)
			testserver.WantError(t, "non-admin "+c.method+" "+c.path, status, resp, http.StatusForbidden, "M_FORBIDDEN")
			status, resp = s.Do(t, c.method, admTokens+c.path, "", body)
			testserver.WantError(t, "anonymous "+c.method+" "+c.path, status, resp, http.StatusUnauthorized, "M_MISSING_TOKEN")
		}
		if got := admList(t, s, admin, ""); len(got) != 0 {
			t.Fatalf("tokens after the non-admin attempts: %v", got)
		}

		create := func(req any) admToken {
			t.Helper()
			status, body := s.Do(t, "POST", admTokens+"/new", admin, req)
			testserver.WantStatus(t, fmt.Sprintf("new %v", req), status, body, http.StatusOK)
			return admDecodeToken(t, body)
		}
		onlyAlphabet := func(tok string) bool {
			return strings.Trim(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-") == ""
		}

		// An explicit token, no limits.
		tok := create(map[string]any{"token": "abc-DEF_1.2~3"})
		if tok.Token != "abc-DEF_1.2~3" || tok.UsesAllowed != nil || tok.ExpiryTime != nil || tok.Pending != 0 || tok.Completed != 0 {
			t.Fatalf("explicit token: %+v", tok)
		}
		// Generated tokens: a given length, and the default of 16.
		tok = create(map[string]any{"length": 10})
		if len(tok.Token) != 10 || !onlyAlphabet(tok.Token) {
			t.Fatalf("length 10: %q", tok.Token)
		}
		generated10 := tok.Token
		for _, req := range []any{map[string]any{}, nil} {
			tok = create(req)
			if len(tok.Token) != 16 || !onlyAlphabet(tok.Token) {
				t.Fatalf("default token for %v: %q", req, tok.Token)
			}
			status, body := s.Do(t, "DELETE", admTokens+"/"+tok.Token, admin, nil)
			testserver.WantStatus(t, "delete generated", status, body, http.StatusOK)
		}
		// Limits.
		tok = create(map[string]any{"token": "limited", "uses_allowed": 3, "expiry_time": expiry})
		if !eqPtr(tok.UsesAllowed, ptr(3)) || !eqPtr(tok.ExpiryTime, ptr(expiry)) {
			t.Fatalf("limited: %+v", tok)
		}
		tok = create(map[string]any{"token": "used-up", "uses_allowed": 0})
		if !eqPtr(tok.UsesAllowed, ptr(0)) {
			t.Fatalf("used-up: %+v", tok)
		}

		// Invalid requests.
		for _, req := range []any{
			map[string]any{"token": "has space"},
			map[string]any{"token": "bang!"},
			map[string]any{"token": "slash/"},
			map[string]any{"token": "ünï"},
			map[string]any{"token": ""},
			map[string]any{"token": strings.Repeat("a", 65)},
			map[string]any{"length": 0},
			map[string]any{"length": 65},
			map[string]any{"uses_allowed": -1},
			map[string]any{"expiry_time": time.Now().Add(-time.Hour).UnixMilli()},
		} {
			status, body := s.Do(t, "POST", admTokens+"/new", admin, req)
			testserver.WantError(t, fmt.Sprintf("new %v", req), status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		}
		for _, req := range []string{`{"token": 5}`, `{"uses_allowed": "3"}`, `{"length": "x"}`} {
			status, body := s.Do(t, "POST", admTokens+"/new", admin, req)
			testserver.WantStatus(t, "new "+req, status, body, http.StatusBadRequest)
		}
		status, body := s.Do(t, "POST", admTokens+"/new", admin, map[string]any{"token": "limited"})
		testserver.WantError(t, "duplicate", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		// The duplicate left the original alone.
		status, body = s.Do(t, "GET", admTokens+"/limited", admin, nil)
		testserver.WantStatus(t, "get limited", status, body, http.StatusOK)
		if tok := admDecodeToken(t, body); !eqPtr(tok.UsesAllowed, ptr(3)) || !eqPtr(tok.ExpiryTime, ptr(expiry)) {
			t.Fatalf("limited after duplicate: %+v", tok)
		}

		// Listing, whole and filtered by validity.
		all := []string{"abc-DEF_1.2~3", generated10, "limited", "used-up"}
		slices.Sort(all)
		if got := admList(t, s, admin, ""); !slices.Equal(got, all) {
			t.Fatalf("list: %v, want %v", got, all)
		}
		valid := []string{"abc-DEF_1.2~3", generated10, "limited"}
		slices.Sort(valid)
		if got := admList(t, s, admin, "?valid=true"); !slices.Equal(got, valid) {
			t.Fatalf("list valid=true: %v, want %v", got, valid)
		}
		if got := admList(t, s, admin, "?valid=false"); !slices.Equal(got, []string{"used-up"}) {
			t.Fatalf("list valid=false: %v, want [used-up]", got)
		}

		// Getting one.
		status, body = s.Do(t, "GET", admTokens+"/nosuch", admin, nil)
		testserver.WantError(t, "get unknown", status, body, http.StatusNotFound, "M_NOT_FOUND")

		// Updating: absent fields keep their value, null clears.
		update := func(name string, req any) admToken {
			t.Helper()
			status, body := s.Do(t, "PUT", admTokens+"/"+name, admin, req)
			testserver.WantStatus(t, fmt.Sprintf("update %s with %v", name, req), status, body, http.StatusOK)
			tok := admDecodeToken(t, body)
			// The answer matches what a later GET sees.
			status, got := s.Do(t, "GET", admTokens+"/"+name, admin, nil)
			testserver.WantStatus(t, "get "+name, status, got, http.StatusOK)
			again := admDecodeToken(t, got)
			if again.Token != tok.Token || !eqPtr(again.UsesAllowed, tok.UsesAllowed) || !eqPtr(again.ExpiryTime, tok.ExpiryTime) {
				t.Fatalf("update %s answered %+v, GET gives %+v", name, tok, again)
			}
			return tok
		}
		check := func(what string, tok admToken, uses, exp *int64) {
			t.Helper()
			if !eqPtr(tok.UsesAllowed, uses) || !eqPtr(tok.ExpiryTime, exp) {
				t.Fatalf("%s: uses_allowed %s expiry_time %s, want %s and %s", what,
					showPtr(tok.UsesAllowed), showPtr(tok.ExpiryTime), showPtr(uses), showPtr(exp))
			}
		}
		check("uses_allowed 5", update("limited", map[string]any{"uses_allowed": 5}), ptr(5), ptr(expiry))
		check("empty update", update("limited", map[string]any{}), ptr(5), ptr(expiry))
		check("no body", update("limited", nil), ptr(5), ptr(expiry))
		later := expiry + 1000
		check("expiry_time later", update("limited", map[string]any{"expiry_time": later}), ptr(5), ptr(later))
		check("expiry_time null", update("limited", map[string]any{"expiry_time": nil}), ptr(5), nil)
		check("uses_allowed null", update("limited", map[string]any{"uses_allowed": nil}), nil, nil)
		check("both", update("limited", map[string]any{"uses_allowed": 1, "expiry_time": expiry}), ptr(1), ptr(expiry))
		// Raising the limit makes a used-up token valid again.
		check("used-up raised", update("used-up", map[string]any{"uses_allowed": 1}), ptr(1), nil)
		if got := admList(t, s, admin, "?valid=false"); len(got) != 0 {
			t.Fatalf("list valid=false after raising: %v", got)
		}
		for _, req := range []any{
			map[string]any{"uses_allowed": -2},
			map[string]any{"uses_allowed": "many"},
			map[string]any{"expiry_time": time.Now().Add(-time.Hour).UnixMilli()},
			map[string]any{"expiry_time": "tomorrow"},
		} {
			status, body := s.Do(t, "PUT", admTokens+"/limited", admin, req)
			testserver.WantError(t, fmt.Sprintf("update with %v", req), status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		}
		status, body = s.Do(t, "GET", admTokens+"/limited", admin, nil)
		testserver.WantStatus(t, "get after refused updates", status, body, http.StatusOK)
		check("after refused updates", admDecodeToken(t, body), ptr(1), ptr(expiry))
		status, body = s.Do(t, "PUT", admTokens+"/nosuch", admin, map[string]any{"uses_allowed": 1})
		testserver.WantError(t, "update unknown", status, body, http.StatusNotFound, "M_NOT_FOUND")

		// Deleting.
		status, body = s.Do(t, "DELETE", admTokens+"/limited", admin, nil)
		testserver.WantStatus(t, "delete", status, body, http.StatusOK)
		if len(body) != 0 {
			t.Fatalf("delete answered %v, want {}", body)
		}
		status, body = s.Do(t, "GET", admTokens+"/limited", admin, nil)
		testserver.WantError(t, "get deleted", status, body, http.StatusNotFound, "M_NOT_FOUND")
		status, body = s.Do(t, "DELETE", admTokens+"/limited", admin, nil)
		testserver.WantError(t, "delete again", status, body, http.StatusNotFound, "M_NOT_FOUND")
		if got := admList(t, s, admin, ""); slices.Contains(got, "limited") {
			t.Fatalf("list after delete: %v", got)
		}
		// A deleted token's name can be issued again.
		tok = create(map[string]any{"token": "limited"})
		if tok.UsesAllowed != nil || tok.Pending != 0 || tok.Completed != 0 {
			t.Fatalf("recreated: %+v", tok)
		}
	})
}
