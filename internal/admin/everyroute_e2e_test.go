package admin_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// adminPrefixes are the path prefixes of the admin APIs: Synapse's,
// Myelin's own, and the spec's client admin endpoints (suspend, lock,
// whois) under every version and unstable prefix.
var adminPrefixes = regexp.MustCompile(`^(/_synapse/admin/|/_myelin/admin/|/_matrix/client/[^/]+(/[^/]+)?/admin/)`)

// notAdminOnly are the admin-prefixed routes that are not for server
// admins alone, with why.
var notAdminOnly = map[string]string{
	// Shared-secret registration authenticates with the secret, not a
	// token (Synapse's /_synapse/admin/v1/register).
	"GET /_synapse/admin/v1/register":  "shared secret",
	"POST /_synapse/admin/v1/register": "shared secret",
}

// TestEveryAdminRouteRefusesNonAdmins (issue 17 item 7): every route the
// client listener serves under an admin prefix answers a signed-in user
// who is not a server admin 403 M_FORBIDDEN, whatever its method; the
// list is read from the router, so a route added later is held to it.
// Path parameters name things that exist where that matters (another
// user, so that whois's own-user exception does not apply).
func TestEveryAdminRouteRefusesNonAdmins(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		s.Register("root", "password1234")
		mallory := s.Register("mallory", "password1234")
		other := s.UserID("root")
		param := regexp.MustCompile(`\{([^}.]+)(\.\.\.)?\}`)
		values := map[string]string{"userId": other, "roomId": "!room:" + s.Config.ServerName,
			"roomIdOrAlias": "!room:" + s.Config.ServerName, "serverName": s.Config.ServerName}
		checked := 0
		for _, route := range s.ClientRoutes() {
			method, pattern, _ := strings.Cut(route, " ")
			pattern = strings.TrimPrefix(pattern, method+" ")
			if !adminPrefixes.MatchString(pattern) {
				continue
			}
			if _, ok := notAdminOnly[route]; ok {
				continue
			}
			// One wildcard pattern serves .../user/{userId}/redact (POST) and
			// .../user/redact_status/{redactId} (GET); see userjobs.go.
			if pattern == "/_synapse/admin/v1/user/{userId}/{action}" {
				pattern = map[string]string{http.MethodPost: "/_synapse/admin/v1/user/{userId}/redact",
					http.MethodGet: "/_synapse/admin/v1/user/redact_status/{redactId}"}[method]
			}
			path := param.ReplaceAllStringFunc(pattern, func(p string) string {
				name := param.FindStringSubmatch(p)[1]
				if v, ok := values[name]; ok {
					return url.PathEscape(v)
				}
				return "x"
			})
			var body any
			if method == http.MethodPost || method == http.MethodPut {
				body = map[string]any{}
			}
			status, resp := s.Do(t, method, path, mallory.AccessToken, body)
			if status != http.StatusForbidden || resp["errcode"] != "M_FORBIDDEN" {
				t.Errorf("%s %s as a non-admin: %d %v, want 403 M_FORBIDDEN", method, path, status, resp)
			}
			checked++
		}
		// The router holds well over a hundred admin routes; a prefix
		// that stopped matching would check nothing.
		if checked < 100 {
			t.Fatalf("only %d admin routes checked", checked)
		}
		t.Logf("%d admin routes refuse a non-admin", checked)
	})
}
