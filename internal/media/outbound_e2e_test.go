package media_test

import (
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestRemoteMediaOutboundPolicy: remote media of a server name that
// leads to loopback is not fetched by default (nothing connects to it),
// and whether a server's port is closed or open, the answer is the same
// 502 naming the server, with no address, port or dial error in it.
func TestRemoteMediaOutboundPolicy(t *testing.T) {
	trap, closed := testserver.NewTrap(t), testserver.ClosedAddr(t)
	addresses := map[string]string{"trap.test": trap.Addr, "closed.test": closed}
	federating := func(allow []string) func(c *config.Config) {
		return func(c *config.Config) {
			c.Federation.Enabled = true
			c.Federation.Addresses = addresses
			c.Outbound.Allow = allow
		}
	}
	leaks := func(body string) bool {
		for _, addr := range []string{trap.Addr, closed} {
			_, port, _ := net.SplitHostPort(addr)
			if strings.Contains(body, port) {
				return true
			}
		}
		return strings.Contains(body, "127.0.0.1") || strings.Contains(body, "dial") || strings.Contains(body, "refused")
	}
	testserver.EachEngine(t, federating(nil), func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw-alice")
		before := trap.Accepted()
		r := get(t, s, alice.AccessToken, "/_matrix/client/v1/media/download/trap.test/someMedia")
		testserver.WantError(t, "remote media on loopback", r.Status, r.JSON, http.StatusBadGateway, "M_UNKNOWN")
		if n := trap.Accepted() - before; n != 0 {
			t.Fatalf("the server connected %d times to a loopback address", n)
		}
		if leaks(string(r.Raw)) {
			t.Errorf("the answer shows dial details: %s", r.Raw)
		}
	})
	s := testserver.Start(t, testdbURL(t), federating(testserver.LoopbackAllow()))
	alice := s.Register("alice", "pw-alice")
	var bodies []string
	for _, server := range []string{"closed.test", "trap.test"} {
		r := get(t, s, alice.AccessToken, "/_matrix/client/v1/media/download/"+server+"/someMedia")
		testserver.WantError(t, "remote media of "+server, r.Status, r.JSON, http.StatusBadGateway, "M_UNKNOWN")
		if leaks(string(r.Raw)) {
			t.Errorf("%s: the answer shows dial details: %s", server, r.Raw)
		}
		bodies = append(bodies, strings.ReplaceAll(string(r.Raw), server, "SERVER"))
	}
	if trap.Accepted() == 0 {
		t.Fatal("with loopback allowed the server never connected to the open port")
	}
	if bodies[0] != bodies[1] {
		t.Errorf("a closed and an open port answer differently:\n%s\n%s", bodies[0], bodies[1])
	}
}
