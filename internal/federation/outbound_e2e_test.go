package federation_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// federating makes a lone server federate, with server names mapped to
// addresses, and the outbound allow list set to allow.
func federating(addresses map[string]string, allow []string) func(c *config.Config) {
	return func(c *config.Config) {
		c.Federation.Enabled = true
		c.Federation.Addresses = addresses
		c.Outbound.Allow = allow
	}
}

// TestOutboundPolicyRefusesLoopback: by default (no outbound.allow) no
// federation request reaches loopback, whether the address is an IP
// literal server name or what discovery finds: neither the notary
// endpoint, which anyone may call unauthenticated and which fetches the
// named server's keys, nor a profile query a user triggers.
func TestOutboundPolicyRefusesLoopback(t *testing.T) {
	trap := testserver.NewTrap(t)
	testserver.EachEngine(t, federating(map[string]string{"trap.test": trap.Addr}, nil), func(t *testing.T, s *testserver.Server) {
		before := trap.Accepted()
		for _, server := range []string{trap.Addr, "trap.test", "[::ffff:127.0.0.1]:" + trap.Port()} {
			st, body := s.Do(t, http.MethodGet, "/_matrix/key/v2/query/"+url.PathEscape(server), "", nil)
			testserver.WantStatus(t, "key query of "+server, st, body, http.StatusOK)
			if keys, _ := body["server_keys"].([]any); len(keys) != 0 {
				t.Fatalf("key query of %s: %v", server, body)
			}
		}
		alice := s.Register("alice", "pw-alice")
		st, body := s.Do(t, http.MethodGet, "/_matrix/client/v3/profile/@bob:trap.test", alice.AccessToken, nil)
		testserver.WantError(t, "profile on loopback", st, body, http.StatusBadGateway, "M_UNKNOWN")
		if n := trap.Accepted() - before; n != 0 {
			t.Fatalf("the server connected %d times to a loopback address", n)
		}
	})
}

// TestFederationErrorsHideDialDetails: requests proxied to another
// server answer the same whether its port is closed or open, naming the
// server and nothing of the address, the port or the dial error.
func TestFederationErrorsHideDialDetails(t *testing.T) {
	trap, closed := testserver.NewTrap(t), testserver.ClosedAddr(t)
	mutate := federating(map[string]string{"trap.test": trap.Addr, "closed.test": closed}, testserver.LoopbackAllow())
	testserver.EachEngine(t, mutate, func(t *testing.T, s *testserver.Server) {
		hideDialDetails(t, s, trap, closed)
	})
}

func hideDialDetails(t *testing.T, s *testserver.Server, trap *testserver.Trap, closed string) {
	alice := s.Register("alice", "pw-alice")
	before := trap.Accepted()
	leaks := func(body string) bool {
		for _, bad := range []string{trap.Port(), strings.Split(closed, ":")[1], "127.0.0.1", "dial", "refused", "EOF", "tls"} {
			if strings.Contains(body, bad) {
				return true
			}
		}
		return false
	}
	for _, req := range []struct {
		what, method, path string
		body               any
	}{
		{"profile", http.MethodGet, "/_matrix/client/v3/profile/@bob:SERVER", nil},
		{"public rooms", http.MethodPost, "/_matrix/client/v3/publicRooms?server=SERVER", map[string]any{}},
		{"join by alias", http.MethodPost, "/_matrix/client/v3/join/%23room:SERVER", map[string]any{}},
		{"join by room ID", http.MethodPost, "/_matrix/client/v3/join/!room:SERVER?via=SERVER", map[string]any{}},
		{"keys query", http.MethodPost, "/_matrix/client/v3/keys/query", map[string]any{"device_keys": map[string]any{"@bob:SERVER": []string{}}}},
	} {
		var bodies []string
		for _, server := range []string{"closed.test", "trap.test"} {
			path := strings.ReplaceAll(req.path, "SERVER", server)
			var body any = req.body
			if req.what == "keys query" {
				body = map[string]any{"device_keys": map[string]any{"@bob:" + server: []string{}}}
			}
			r := testserver.Send(t, nil, req.method, s.URL+path, alice.AccessToken, body)
			if r.Status >= 500 && r.Status != http.StatusBadGateway {
				t.Errorf("%s via %s: %d %s", req.what, server, r.Status, r.Raw)
			}
			if leaks(string(r.Raw)) {
				t.Errorf("%s via %s: the answer shows dial details: %s", req.what, server, r.Raw)
			}
			bodies = append(bodies, strings.ReplaceAll(string(r.Raw), server, "SERVER"))
		}
		if bodies[0] != bodies[1] {
			t.Errorf("%s: a closed and an open port answer differently:\n%s\n%s", req.what, bodies[0], bodies[1])
		}
	}
	if trap.Accepted() == before {
		t.Fatal("with loopback allowed the server never connected to the open port")
	}
}
