package federation_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/federation"
	"github.com/myelin-chat/myelin/internal/testdb"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestNotaryNegativeCache: a server whose keys could not be fetched is
// not dialled again for a while, however often (GET or POST) anyone
// asks; another server still is.
func TestNotaryNegativeCache(t *testing.T) {
	trap, other := testserver.NewTrap(t), testserver.NewTrap(t)
	mutate := federating(map[string]string{"trap.test": trap.Addr, "other.test": other.Addr}, testserver.LoopbackAllow())
	testserver.EachEngine(t, mutate, func(t *testing.T, s *testserver.Server) {
		query := func(server string) {
			t.Helper()
			st, body := s.Do(t, http.MethodGet, "/_matrix/key/v2/query/"+server, "", nil)
			testserver.WantStatus(t, "key query of "+server, st, body, http.StatusOK)
			if keys, _ := body["server_keys"].([]any); len(keys) != 0 {
				t.Fatalf("key query of %s: %v", server, body)
			}
		}
		before := trap.Accepted()
		query("trap.test")
		dialled := trap.Accepted()
		if dialled == before {
			t.Fatal("the first query never dialled the server")
		}
		for range 5 {
			query("trap.test")
		}
		st, body := s.Do(t, http.MethodPost, "/_matrix/key/v2/query", "", map[string]any{"server_keys": map[string]any{"trap.test": map[string]any{}}})
		testserver.WantStatus(t, "POST for trap.test", st, body, http.StatusOK)
		if n := trap.Accepted() - dialled; n != 0 {
			t.Fatalf("an unreachable server was dialled %d more times within the window", n)
		}
		otherBefore := other.Accepted()
		query("other.test")
		if other.Accepted() == otherBefore {
			t.Fatal("the negative cache kept another server from being asked")
		}
	})
}

// TestNotaryServerCap: a POST naming more than MaxNotaryServers servers
// is 400 M_TOO_LARGE and fetches nothing; exactly that many is answered.
func TestNotaryServerCap(t *testing.T) {
	trap := testserver.NewTrap(t)
	s := testserver.Start(t, testdbURL(t), federating(map[string]string{"trap.test": trap.Addr}, testserver.LoopbackAllow()))
	names := func(n int) map[string]any {
		m := map[string]any{"trap.test": map[string]any{}}
		for i := 1; len(m) < n; i++ {
			m[fmt.Sprintf("not a server %d", i)] = map[string]any{}
		}
		return m
	}
	st, body := s.Do(t, http.MethodPost, "/_matrix/key/v2/query", "", map[string]any{"server_keys": names(federation.MaxNotaryServers + 1)})
	testserver.WantError(t, "POST over the cap", st, body, http.StatusBadRequest, "M_TOO_LARGE")
	if n := trap.Accepted(); n != 0 {
		t.Fatalf("a refused POST dialled %d times", n)
	}
	st, body = s.Do(t, http.MethodPost, "/_matrix/key/v2/query", "", map[string]any{"server_keys": names(federation.MaxNotaryServers)})
	testserver.WantStatus(t, "POST at the cap", st, body, http.StatusOK)
	if trap.Accepted() == 0 {
		t.Fatal("a POST at the cap fetched nothing")
	}
}

// TestNotaryRateLimit: the notary endpoints draw from a bucket per IP
// address (rate_limit.key_query); past it GET and POST are 429
// M_LIMIT_EXCEEDED. With rate limiting off they are not limited.
func TestNotaryRateLimit(t *testing.T) {
	s := testserver.Start(t, testdbURL(t), func(c *config.Config) {
		c.Federation.Enabled = true
		c.RateLimit.Enabled = true
		c.RateLimit.KeyQuery = config.RateLimitBucket{PerSecond: 0.001, Burst: 3}
	})
	own := "/_matrix/key/v2/query/" + s.Config.ServerName
	for i := range 3 {
		st, body := s.Do(t, http.MethodGet, own, "", nil)
		testserver.WantStatus(t, fmt.Sprintf("query %d within the burst", i), st, body, http.StatusOK)
	}
	st, body := s.Do(t, http.MethodGet, own, "", nil)
	testserver.WantError(t, "GET past the burst", st, body, http.StatusTooManyRequests, "M_LIMIT_EXCEEDED")
	if ms, _ := body["retry_after_ms"].(float64); ms <= 0 {
		t.Errorf("no retry_after_ms: %v", body)
	}
	st, body = s.Do(t, http.MethodPost, "/_matrix/key/v2/query", "", map[string]any{"server_keys": map[string]any{s.Config.ServerName: map[string]any{}}})
	testserver.WantError(t, "POST past the burst", st, body, http.StatusTooManyRequests, "M_LIMIT_EXCEEDED")

	off := testserver.Start(t, testdbURL(t), func(c *config.Config) {
		c.Federation.Enabled = true
		c.RateLimit.Enabled = false
		c.RateLimit.KeyQuery = config.RateLimitBucket{PerSecond: 0.001, Burst: 3}
	})
	for i := range 10 {
		st, body := off.Do(t, http.MethodGet, "/_matrix/key/v2/query/"+off.Config.ServerName, "", nil)
		testserver.WantStatus(t, fmt.Sprintf("query %d with rate limiting off", i), st, body, http.StatusOK)
	}
}

func testdbURL(t *testing.T) string {
	t.Helper()
	return testdb.NewURL(t, testdb.Engines()[0])
}
