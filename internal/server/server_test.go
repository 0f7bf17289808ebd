package server_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/server"
	"github.com/myelin-chat/myelin/internal/testdb"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// counterValue finds the sample of a metric whose label set contains
// every one of labels (each `name="value"`), -1 when there is none.
func counterValue(text, metric string, labels ...string) float64 {
	for line := range strings.SplitSeq(text, "\n") {
		if !strings.HasPrefix(line, metric+"{") {
			continue
		}
		end := strings.LastIndexByte(line, '}')
		if end < 0 {
			continue
		}
		set := line[len(metric)+1 : end]
		ok := true
		for _, l := range labels {
			if !strings.Contains(set, l) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(line[end+1:]), 64)
		if err != nil {
			return -1
		}
		return v
	}
	return -1
}

// TestMetricsListener checks /metrics on its own listener: request
// counts by route pattern, unknown paths under "unrecognized", latency
// histograms, and the Go runtime collectors.
func TestMetricsListener(t *testing.T) {
	testserver.EachEngine(t, func(c *config.Config) {
		c.Listen.Metrics = "127.0.0.1:0"
	}, func(t *testing.T, s *testserver.Server) {
		addr := s.Addr("metrics")
		if addr == "" {
			t.Fatal("no metrics listener")
		}
		alice := s.Register("alice", "pw-alice")
		for range 3 {
			testserver.Send(t, nil, http.MethodGet, s.URL+"/_matrix/client/versions", "", nil)
		}
		testserver.Send(t, nil, http.MethodGet, s.URL+"/no/such/path/one", "", nil)
		testserver.Send(t, nil, http.MethodGet, s.URL+"/no/such/path/two", "", nil)
		testserver.Send(t, nil, http.MethodGet, s.URL+"/_matrix/client/v3/devices/SECRETDEVICE", "", nil)
		req, _ := http.NewRequest("GET", s.URL+"/_matrix/client/v3/devices/"+alice.DeviceID.String(), nil)
		req.Header.Set("Authorization", "Bearer "+alice.AccessToken)
		if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 200 {
			t.Fatalf("GET device: %v %v", res, err)
		} else {
			res.Body.Close()
		}

		// The client listener does not serve /metrics.
		if r := testserver.Send(t, nil, http.MethodGet, s.URL+"/metrics", "", nil); r.Status != 404 || r.JSON["errcode"] != "M_UNRECOGNIZED" {
			t.Fatalf("client /metrics: %d %s", r.Status, r.Raw)
		}

		r := testserver.Send(t, nil, http.MethodGet, "http://"+addr+"/metrics", "", nil)
		if r.Status != 200 {
			t.Fatalf("metrics: %d", r.Status)
		}
		text := string(r.Raw)
		const total = "myelin_http_requests_total"
		if v := counterValue(text, total, `endpoint="GET /_matrix/client/versions"`, `code="200"`); v != 3 {
			t.Fatalf("versions count %v in:\n%s", v, text)
		}
		if v := counterValue(text, total, `endpoint="unrecognized"`, `code="404"`); v < 3 {
			// the two unknown paths and the client /metrics
			t.Fatalf("unrecognized count %v in:\n%s", v, text)
		}
		if v := counterValue(text, total, `endpoint="GET /_matrix/client/v3/devices/{deviceId}"`, `code="401"`); v != 1 {
			t.Fatalf("devices 401 count %v in:\n%s", v, text)
		}
		if v := counterValue(text, total, `endpoint="GET /_matrix/client/v3/devices/{deviceId}"`, `code="200"`); v != 1 {
			t.Fatalf("devices 200 count %v in:\n%s", v, text)
		}
		if v := counterValue(text, total, `endpoint="POST /_matrix/client/v3/register"`, `code="200"`); v != 1 {
			t.Fatalf("register count %v in:\n%s", v, text)
		}
		// Label values are route patterns, never raw paths.
		for _, leak := range []string{"/no/such/path", "SECRETDEVICE", alice.DeviceID.String()} {
			if strings.Contains(text, leak) {
				t.Fatalf("metrics mention %q", leak)
			}
		}
		if v := counterValue(text, "myelin_http_request_duration_seconds_count", `endpoint="GET /_matrix/client/versions"`); v != 3 {
			t.Fatalf("latency count %v in:\n%s", v, text)
		}
		if !strings.Contains(text, "myelin_http_request_duration_seconds_bucket{") {
			t.Fatal("no latency buckets")
		}
		if !strings.Contains(text, "go_goroutines") {
			t.Fatal("no Go runtime metrics")
		}
	})
}

// TestNoMetricsListenerByDefault checks that metrics are off unless
// configured.
func TestNoMetricsListenerByDefault(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		if addr := s.Addr("metrics"); addr != "" {
			t.Fatalf("metrics listener on %s without listen.metrics", addr)
		}
		if addr := s.Addr("federation"); addr != "" {
			t.Fatalf("federation listener on %s without listen.federation", addr)
		}
		// Federation is served on the client listener instead.
		r := testserver.Send(t, nil, http.MethodGet, s.URL+"/_matrix/federation/v1/version", "", nil)
		srv, _ := r.JSON["server"].(map[string]any)
		if r.Status != 200 || srv["name"] != "Myelin" || srv["version"] != server.Version {
			t.Fatalf("federation on the client listener: %d %s", r.Status, r.Raw)
		}
	})
}

// TestFederationListener checks a separate federation listener: it
// serves the federation API, and the two listeners do not overlap.
func TestFederationListener(t *testing.T) {
	testserver.EachEngine(t, func(c *config.Config) {
		c.Listen.Federation = "127.0.0.1:0"
	}, func(t *testing.T, s *testserver.Server) {
		fed := "http://" + s.Addr("federation")
		r := testserver.Send(t, nil, http.MethodGet, fed+"/_matrix/federation/v1/version", "", nil)
		srv, _ := r.JSON["server"].(map[string]any)
		if r.Status != 200 || srv["name"] != "Myelin" || srv["version"] != server.Version {
			t.Fatalf("federation version: %d %s", r.Status, r.Raw)
		}
		if r := testserver.Send(t, nil, http.MethodGet, fed+"/_matrix/client/versions", "", nil); r.Status != 404 || r.JSON["errcode"] != "M_UNRECOGNIZED" {
			t.Fatalf("client API on the federation listener: %d %s", r.Status, r.Raw)
		}
		if r := testserver.Send(t, nil, http.MethodGet, s.URL+"/_matrix/federation/v1/version", "", nil); r.Status != 404 || r.JSON["errcode"] != "M_UNRECOGNIZED" {
			t.Fatalf("federation API on the client listener: %d %s", r.Status, r.Raw)
		}
		if r := testserver.Send(t, nil, http.MethodGet, s.URL+"/_matrix/client/versions", "", nil); r.Status != 200 {
			t.Fatalf("client versions: %d %s", r.Status, r.Raw)
		}
	})
}

// TestFederationTLS checks that with tls_cert and tls_key the federation
// listener speaks HTTPS (and only HTTPS) while the client listener stays
// plain HTTP.
func TestFederationTLS(t *testing.T) {
	certPath, keyPath, pool := testserver.SelfSignedCert(t)
	testserver.EachEngine(t, func(c *config.Config) {
		c.Listen.Federation = "127.0.0.1:0"
		c.Listen.TLSCert, c.Listen.TLSKey = certPath, keyPath
	}, func(t *testing.T, s *testserver.Server) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		fed := s.Addr("federation")

		res, err := client.Get("https://" + fed + "/_matrix/federation/v1/version")
		if err != nil {
			t.Fatalf("https federation: %v", err)
		}
		defer res.Body.Close()
		var body map[string]map[string]string
		if err := json.NewDecoder(res.Body).Decode(&body); err != nil || res.StatusCode != 200 || body["server"]["name"] != "Myelin" {
			t.Fatalf("https federation: %d %v %v", res.StatusCode, body, err)
		}
		if res.TLS == nil || res.TLS.Version < tls.VersionTLS12 {
			t.Fatalf("TLS state: %+v", res.TLS)
		}
		// The certificate is the configured one: a client that does not
		// trust it refuses the connection.
		if _, err := (&http.Client{Timeout: 10 * time.Second}).Get("https://" + fed + "/_matrix/federation/v1/version"); err == nil {
			t.Fatal("an untrusted self-signed certificate was accepted")
		}
		// Plain HTTP on the TLS port does not get an answer.
		plain := &http.Client{Timeout: 10 * time.Second}
		if res, err := plain.Get("http://" + fed + "/_matrix/federation/v1/version"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				t.Fatal("plain HTTP served on the TLS listener")
			}
		}
		// The client listener is unaffected.
		if r := testserver.Send(t, nil, http.MethodGet, s.URL+"/_matrix/client/versions", "", nil); r.Status != 200 {
			t.Fatalf("client versions: %d %s", r.Status, r.Raw)
		}
	})
}

// TestStartFailsOnBadTLSFiles checks that unreadable key material stops
// Start with an error naming the setting, and that the server can still
// be shut down cleanly.
func TestStartFailsOnBadTLSFiles(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "bad.crt"), filepath.Join(dir, "bad.key")
	for _, p := range []string{certPath, keyPath} {
		if err := os.WriteFile(p, []byte("not a PEM file"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		cfg := testserver.Config(t, dbURL)
		cfg.Listen.Federation = "127.0.0.1:0"
		cfg.Listen.TLSCert, cfg.Listen.TLSKey = certPath, keyPath
		if err := cfg.Validate(); err != nil {
			t.Fatalf("validate: %v", err)
		}
		s, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatalf("new: %v", err)
		}
		err = s.Start()
		if err == nil || !strings.Contains(err.Error(), "listen.tls_cert") {
			t.Fatalf("start: %v, want a listen.tls_cert error", err)
		}
		if addr := s.Addr("client"); addr != "" {
			// The client listener bound before the failure must be closed.
			if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				conn.Close()
				t.Fatalf("client listener %s still accepting after a failed start", addr)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	})
}
