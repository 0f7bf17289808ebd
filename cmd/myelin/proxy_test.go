package main_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/testdb"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// contrib/nginx/myelin.conf, run by nginx in front of a server set up as
// the file says: delegation from example.org reaches the server, both
// APIs pass through on 443 and 8448, and the admin APIs answer 404 (a
// prefix location alone would lose to the proxy's regular expression).
// Skipped where nginx is not installed.
func TestNginxExampleServes(t *testing.T) {
	t.Parallel()
	nginx := externalTool(t, "nginx")
	ca := testserver.NewCA(t)
	s := proxiedServer(t)

	raw, err := os.ReadFile("../../contrib/nginx/myelin.conf")
	if err != nil {
		t.Fatal(err)
	}
	// The example as it is, on loopback ports, with test certificates,
	// in front of the test server.
	ports := map[string]string{"443": freeLoopbackPort(t), "8448": freeLoopbackPort(t)}
	var conf []string
	for _, line := range strings.Split(string(raw), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "listen [::]:"):
			continue
		case strings.HasPrefix(trimmed, "listen "):
			port := strings.Fields(trimmed)[1]
			line = strings.Replace(line, "listen "+port, "listen 127.0.0.1:"+ports[port], 1)
		case strings.HasPrefix(trimmed, "ssl_certificate"):
			continue
		case strings.HasPrefix(trimmed, "server_name "):
			name := strings.TrimSuffix(strings.Fields(trimmed)[1], ";")
			cert, key := ca.Issue(t, name)
			line += fmt.Sprintf("\n    ssl_certificate %s;\n    ssl_certificate_key %s;", cert, key)
		}
		conf = append(conf, strings.ReplaceAll(line, "http://127.0.0.1:8008", "http://"+s.Addr("client")))
	}
	dir := t.TempDir()
	site := filepath.Join(dir, "myelin.conf")
	if err := os.WriteFile(site, []byte(strings.Join(conf, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	main := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log stderr;
events {}
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[2]s;
}
`, dir, site)
	mainFile := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(mainFile, []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(nginx, "-t", "-p", dir, "-e", "stderr", "-c", mainFile).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	cmd := exec.Command(nginx, "-p", dir, "-e", "stderr", "-c", mainFile)
	var logs strings.Builder
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("nginx:\n%s", logs.String())
		}
	})

	checkProxy(t, ca, ports)
}

// proxiedServer starts a server set up as the proxy examples say:
// example.org delegated to matrix.example.org, behind a proxy.
func proxiedServer(t *testing.T) *testserver.Server {
	t.Helper()
	cfg := testserver.Config(t, testdb.NewURL(t, "sqlite"))
	cfg.ServerName = "example.org"
	cfg.WellKnown.Server = "matrix.example.org:443"
	cfg.WellKnown.ClientBaseURL = "https://matrix.example.org"
	cfg.HTTP.TrustForwardedFor = true
	cfg.Federation.Enabled = true
	return testserver.StartConfig(t, cfg)
}

// checkProxy checks a proxy example running on loopback, its ports 443
// and 8448 at ports: example.org's delegation reaches the server, both
// APIs pass through on both ports, and the admin APIs answer 404.
func checkProxy(t *testing.T, ca testserver.CA, ports map[string]string) {
	t.Helper()
	get := func(host, port, path string) (int, []byte) {
		t.Helper()
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: host},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, "127.0.0.1:"+ports[port])
			}}}
		var resp *http.Response
		var err error
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			resp, err = client.Get("https://" + host + path)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET https://%s:%s%s: %v", host, port, path, err)
			}
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}

	// Delegation: example.org's well-known documents come from Myelin.
	code, body := get("example.org", "443", "/.well-known/matrix/server")
	var server struct {
		Server string `json:"m.server"`
	}
	if code != http.StatusOK || json.Unmarshal(body, &server) != nil || server.Server != "matrix.example.org:443" {
		t.Fatalf("example.org/.well-known/matrix/server: %d %s", code, body)
	}
	for _, port := range []string{"443", "8448"} {
		if code, body := get("matrix.example.org", port, "/_matrix/client/versions"); code != http.StatusOK || !strings.Contains(string(body), "versions") {
			t.Errorf("client API on %s: %d %s", port, code, body)
		}
		if code, body := get("matrix.example.org", port, "/_matrix/federation/v1/version"); code != http.StatusOK || !strings.Contains(string(body), "server") {
			t.Errorf("federation API on %s: %d %s", port, code, body)
		}
		for _, path := range []string{"/_synapse/admin/v1/server_version", "/_myelin/admin/v1/reports"} {
			// Myelin itself answers 401 without a token: a 404 is the proxy's.
			if code, body := get("matrix.example.org", port, path); code != http.StatusNotFound {
				t.Errorf("%s on %s from the internet: %d %s, want the proxy's 404", path, port, code, body)
			}
		}
	}
}

// contrib/caddy/Caddyfile, run by Caddy in front of a server set up as
// the file says, passes the same checks as the nginx example. Only the
// site addresses (loopback ports) and certificates (the test CA's, where
// Caddy would get them from Let's Encrypt) differ. Skipped where Caddy is
// not installed.
func TestCaddyExampleServes(t *testing.T) {
	t.Parallel()
	caddy := externalTool(t, "caddy")
	ca := testserver.NewCA(t)
	s := proxiedServer(t)
	raw, err := os.ReadFile("../../contrib/caddy/Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	ports := map[string]string{"443": freeLoopbackPort(t), "8448": freeLoopbackPort(t)}
	conf := []string{"{", "\tadmin off", "\tauto_https off", "}"}
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasSuffix(line, "{") && !strings.HasPrefix(line, "\t") && !strings.HasPrefix(line, "#") {
			// A site block: its addresses on the test ports, and the test
			// CA's certificate for its first name.
			var addrs []string
			for _, a := range strings.Split(strings.TrimSpace(strings.TrimSuffix(line, "{")), ",") {
				host, port, found := strings.Cut(strings.TrimSpace(a), ":")
				if !found {
					port = "443"
				}
				addrs = append(addrs, "https://"+host+":"+ports[port])
			}
			first, _, _ := strings.Cut(strings.TrimSpace(strings.Split(line, ",")[0]), ":")
			cert, key := ca.Issue(t, strings.TrimSuffix(strings.TrimSpace(first), " {"))
			line = strings.Join(addrs, ", ") + " {\n\ttls " + cert + " " + key
		}
		conf = append(conf, strings.ReplaceAll(line, "127.0.0.1:8008", s.Addr("client")))
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(file, []byte(strings.Join(conf, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(caddy, "run", "--config", file, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("caddy:\n%s\nCaddyfile:\n%s", logs.String(), strings.Join(conf, "\n"))
		}
	})
	checkProxy(t, ca, ports)
}

// freeLoopbackPort is a loopback port nobody listens on now.
func freeLoopbackPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}
