package server_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// These tests are about the HTTP layer, not storage: one engine will do.

// dialClient opens a raw connection to the client listener.
func dialClient(t *testing.T, s *testserver.Server) net.Conn {
	t.Helper()
	u, _ := url.Parse(s.URL)
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// trickle sends a request whose body of n bytes comes one byte every
// interval, until the server answers; it returns the answer's status
// line and how long the server took, or fails after limit.
func trickle(t *testing.T, s *testserver.Server, method, path, token string, n int, interval, limit time.Duration) (string, time.Duration) {
	t.Helper()
	c := dialClient(t, s)
	start := time.Now()
	head := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", method, path, n)
	if token != "" {
		head += "Authorization: Bearer " + token + "\r\n"
	}
	if _, err := io.WriteString(c, head+"\r\n"); err != nil {
		t.Fatal(err)
	}
	go func() {
		for range n {
			if _, err := c.Write([]byte(" ")); err != nil {
				return
			}
			time.Sleep(interval)
		}
	}()
	_ = c.SetReadDeadline(time.Now().Add(limit))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("%s %s: no answer to a trickled body within %v: %v", method, path, limit, err)
	}
	return strings.TrimSpace(line), time.Since(start)
}

// TestTrickledBodyIsCutOff checks that a body sent one byte at a time
// is answered 408 once it falls behind the minimum rate, on an
// unauthenticated and on an authenticated endpoint, instead of holding
// its connection and handler for as long as the client likes.
func TestTrickledBodyIsCutOff(t *testing.T) {
	s := testserver.Start(t, "", func(c *config.Config) {
		c.Limits.RequestBodyTimeout = time.Second
		c.Limits.RequestBodyMinRate = 1024
	})
	alice := s.Register("alice", "pw-alice")
	for _, c := range []struct{ method, path, token string }{
		{"POST", "/_matrix/client/v3/login", ""},
		{"PUT", "/_matrix/client/v3/user/" + url.PathEscape(alice.UserID.String()) + "/account_data/m.x", alice.AccessToken},
		{"POST", "/_matrix/media/v3/upload", alice.AccessToken},
	} {
		status, took := trickle(t, s, c.method, c.path, c.token, 1000, 200*time.Millisecond, 10*time.Second)
		if !strings.Contains(status, " 408 ") {
			t.Fatalf("%s %s: got %q, want 408", c.method, c.path, status)
		}
		if took > 5*time.Second {
			t.Fatalf("%s %s: cut off after %v, want about 1s", c.method, c.path, took)
		}
	}
}

// TestSteadySlowBodyIsAccepted checks that the minimum rate, not a flat
// timeout, decides: a body arriving steadily over several times the
// grace period, faster than the minimum rate, is read whole.
func TestSteadySlowBodyIsAccepted(t *testing.T) {
	s := testserver.Start(t, "", func(c *config.Config) {
		c.Limits.RequestBodyTimeout = time.Second
		c.Limits.RequestBodyMinRate = 1024
	})
	alice := s.Register("alice", "pw-alice")
	pr, pw := io.Pipe()
	go func() {
		// 12 kB at 4 kB/s: three seconds, three times the grace period.
		chunk := []byte(`"` + strings.Repeat("a", 1022) + `",`)
		pw.Write([]byte(`{"a":[`))
		for i := range 12 {
			if i%4 == 0 && i > 0 {
				time.Sleep(time.Second)
			}
			pw.Write(chunk)
		}
		pw.Write([]byte(`""]}`))
		pw.Close()
	}()
	req, _ := http.NewRequest("PUT", s.URL+"/_matrix/client/v3/user/"+url.PathEscape(alice.UserID.String())+"/account_data/m.slow", pr)
	req.Header.Set("Authorization", "Bearer "+alice.AccessToken)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("steady slow body: got %d %s", res.StatusCode, body)
	}
	if took := time.Since(start); took < 2*time.Second {
		t.Fatalf("the body came in %v: the test did not send it slowly", took)
	}
}

// TestLongPollOutlivesBodyDeadline checks that the body deadline ends
// with the body: a long-polling /sync on a connection that earlier
// carried a body, and lasting well past the grace period, is answered
// in full, not cut.
func TestLongPollOutlivesBodyDeadline(t *testing.T) {
	s := testserver.Start(t, "", func(c *config.Config) {
		c.Limits.RequestBodyTimeout = 500 * time.Millisecond
		c.Limits.RequestHeaderTimeout = 500 * time.Millisecond
	})
	alice := s.Register("alice", "pw-alice")
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	r := testserver.Send(t, client, "PUT", s.URL+"/_matrix/client/v3/user/"+url.PathEscape(alice.UserID.String())+"/account_data/m.x", alice.AccessToken, map[string]any{"a": 1})
	if r.Status != http.StatusOK {
		t.Fatalf("account data: %d %s", r.Status, r.Raw)
	}
	r = testserver.Send(t, client, "GET", s.URL+"/_matrix/client/v3/sync", alice.AccessToken, nil)
	since, _ := r.JSON["next_batch"].(string)
	start := time.Now()
	r = testserver.Send(t, client, "GET", s.URL+"/_matrix/client/v3/sync?timeout=2000&since="+url.QueryEscape(since), alice.AccessToken, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("long-poll: %d %s", r.Status, r.Raw)
	}
	if took := time.Since(start); took < 1900*time.Millisecond {
		t.Fatalf("long-poll answered after %v, want its 2s timeout", took)
	}
}

// TestConnectionsPerIP checks that one address holding the configured
// number of connections gets its next one answered 429 and closed, and
// that a freed slot serves again.
func TestConnectionsPerIP(t *testing.T) {
	s := testserver.Start(t, "", func(c *config.Config) {
		c.RateLimit.Enabled = true
		c.Limits.ConnectionsPerIP = 3
	})
	var held []net.Conn
	for range 3 {
		held = append(held, dialClient(t, s))
	}
	// The limiter counts connections as they are accepted; one request
	// on each makes sure all three were.
	for _, c := range held {
		fmt.Fprintf(c, "GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\n\r\n")
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("held connection: %v %v", res, err)
		}
		io.Copy(io.Discard, res.Body)
	}
	extra := dialClient(t, s)
	fmt.Fprintf(extra, "GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\n\r\n")
	_ = extra.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(extra), nil)
	if err != nil {
		t.Fatalf("connection over the limit: %v", err)
	}
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), "M_LIMIT_EXCEEDED") {
		t.Fatalf("connection over the limit: got %d %s, want 429 M_LIMIT_EXCEEDED", res.StatusCode, body)
	}
	held[0].Close()
	// The slot is given back once the server sees the close.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c := dialClient(t, s)
		fmt.Fprintf(c, "GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\n\r\n")
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err == nil && res.StatusCode == http.StatusOK {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("a freed slot never served again: %v %v", res, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestConnectionsPerIPOffWithoutRateLimits checks that
// MYELIN_RATE_LIMIT=off (benchmarks) lifts the connection cap too.
func TestConnectionsPerIPOffWithoutRateLimits(t *testing.T) {
	s := testserver.Start(t, "", func(c *config.Config) {
		c.RateLimit.Enabled = false
		c.Limits.ConnectionsPerIP = 1
	})
	for range 3 {
		c := dialClient(t, s)
		fmt.Fprintf(c, "GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\n\r\n")
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("rate limits off: %v %v", res, err)
		}
	}
}

// TestTrickledHeadersAreCutOff checks that limits.request_header_timeout
// reaches the listener: headers sent a line at a time past it get the
// connection closed.
func TestTrickledHeadersAreCutOff(t *testing.T) {
	s := testserver.Start(t, "", func(c *config.Config) {
		c.Limits.RequestHeaderTimeout = time.Second
	})
	c := dialClient(t, s)
	start := time.Now()
	io.WriteString(c, "GET /_matrix/client/versions HTTP/1.1\r\nHost: x\r\n")
	go func() {
		for i := 0; ; i++ {
			if _, err := fmt.Fprintf(c, "X-Slow-%d: 1\r\n", i); err != nil {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.ReadAll(c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("trickled headers: connection still open after 10s")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("trickled headers: cut off after %v, want about 1s", took)
	}
}
