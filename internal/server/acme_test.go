package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testdb"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// freePort finds a loopback port nobody listens on (pebble's own ports
// must be in its configuration before it starts).
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// loopbackDNS answers every A query with 127.0.0.1, so that pebble's
// validation of a made-up domain connects to the server under test. It
// listens on UDP and TCP at the same port (pebble asks over TCP).
func loopbackDNS(t *testing.T) string {
	t.Helper()
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		for _, q := range r.Question {
			if q.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET}, A: net.IPv4(127, 0, 0, 1)})
			}
		}
		_ = w.WriteMsg(m)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	for _, srv := range []*dns.Server{{Listener: ln, Handler: handler}, {PacketConn: pc, Handler: handler}} {
		go srv.ActivateAndServe()
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return ln.Addr().String()
}

// startPebble builds and runs Let's Encrypt's test ACME server, which
// validates TLS-ALPN-01 challenges on tlsPort (HTTP-01 on httpPort) of
// whatever name it is asked for, resolved through dnsAddr, and issues certificates valid for
// validity. It returns its directory URL and the pool of its roots.
func startPebble(t *testing.T, ca testserver.CA, dnsAddr string, tlsPort, httpPort int, validity time.Duration) (string, *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "pebble")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/letsencrypt/pebble/v2/cmd/pebble").CombinedOutput(); err != nil {
		t.Fatalf("building pebble: %v\n%s", err, out)
	}
	cert, key := ca.Issue(t, "localhost")
	api, mgmt := freePort(t), freePort(t)
	conf := map[string]any{"pebble": map[string]any{
		"listenAddress": fmt.Sprintf("127.0.0.1:%d", api), "managementListenAddress": fmt.Sprintf("127.0.0.1:%d", mgmt),
		"certificate": cert, "privateKey": key, "httpPort": httpPort, "tlsPort": tlsPort,
		"ocspResponderURL": "", "externalAccountBindingRequired": false, "keyAlgorithm": "ecdsa",
		"profiles": map[string]any{"default": map[string]any{"description": "test", "validityPeriod": int(validity.Seconds())}},
	}}
	raw, _ := json.Marshal(conf)
	confFile := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(confFile, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", confFile, "-dnsserver", dnsAddr)
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	logFile, _ := os.Create(filepath.Join(dir, "pebble.log"))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			log, _ := os.ReadFile(logFile.Name())
			t.Logf("pebble:\n%s", log)
		}
	})
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	var roots []byte
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := client.Get(fmt.Sprintf("https://localhost:%d/roots/0", mgmt))
		if err == nil {
			roots, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not start: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(roots) {
		t.Fatalf("pebble's root is not PEM: %q", roots)
	}
	return fmt.Sprintf("https://localhost:%d/dir", api), pool
}

// handshake connects to addr as a client of domain would and returns the
// certificate it is served, verified against roots.
func handshake(t *testing.T, addr, domain string, roots *x509.CertPool) (*x509.Certificate, error) {
	t.Helper()
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 30 * time.Second}, Config: &tls.Config{ServerName: domain, RootCAs: roots}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.(*tls.Conn).ConnectionState().PeerCertificates[0], nil
}

// With acme.domain, Myelin obtains its certificate from the ACME server
// on the first handshake, answering the TLS-ALPN-01 challenge itself on
// its TLS listener, serves both APIs over it, keeps it in the data
// directory, and renews it before it expires without a restart.
func TestACMECertificateAndRenewal(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go command is needed to build pebble")
	}
	ca := testserver.NewCA(t)
	dnsAddr := loopbackDNS(t)
	port := freePort(t)
	cfg := testserver.Config(t, testdb.NewURL(t, "sqlite"))
	cfg.ServerName = "acme.test"
	cfg.Listen.Client = "127.0.0.1:" + strconv.Itoa(port)
	cfg.Listen.ClientTLS = true
	cfg.Federation.Enabled = true
	// Certificates of 30 s: autocert renews after two thirds of a
	// certificate's life, so the test sees a renewal after about 20 s.
	dirURL, roots := startPebble(t, ca, dnsAddr, port, freePort(t), 30*time.Second)
	cfg.ACME = config.ACME{Domain: "acme.test", Email: "admin@acme.test", CAFile: ca.File(), DirectoryURL: dirURL}
	s := testserver.StartConfig(t, cfg)
	addr := s.Addr("client")

	first, err := handshake(t, addr, "acme.test", roots)
	if err != nil {
		t.Fatalf("first handshake: %v", err)
	}
	if len(first.DNSNames) != 1 || first.DNSNames[0] != "acme.test" {
		t.Fatalf("certificate for %v", first.DNSNames)
	}
	// Both APIs are served over it.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{ServerName: "acme.test", RootCAs: roots},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}}
	for _, path := range []string{"/_matrix/federation/v1/version", "/_matrix/client/versions"} {
		resp, err := client.Get("https://acme.test" + path)
		if err != nil {
			t.Fatalf("%s over the ACME certificate: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(cfg.DataDir, "acme")); len(entries) == 0 {
		t.Fatal("no certificate kept in <data_dir>/acme")
	}

	// A handshake for a name the server does not hold is refused, not
	// sent to the ACME server.
	if _, err := handshake(t, addr, "other.test", roots); err == nil {
		t.Fatal("a handshake for another domain got a certificate")
	}

	for deadline := time.Now().Add(45 * time.Second); ; {
		cur, err := handshake(t, addr, "acme.test", roots)
		if err == nil && cur.SerialNumber.Cmp(first.SerialNumber) != 0 {
			if !cur.NotAfter.After(first.NotAfter) {
				t.Fatalf("the renewed certificate expires at %v, the first at %v", cur.NotAfter, first.NotAfter)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the certificate was not renewed before it expired (last error %v)", err)
		}
		time.Sleep(time.Second)
	}
}

// With acme.http_listen, the HTTP-01 challenge is answered there: here
// the TLS-ALPN-01 port the ACME server tries is closed, so only HTTP-01
// can succeed. Other requests to that listener are sent to https. A
// restart reuses the certificate obtained.
func TestACMEHTTP01(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go command is needed to build pebble")
	}
	ca := testserver.NewCA(t)
	httpPort := freePort(t)
	dirURL, roots := startPebble(t, ca, loopbackDNS(t), freePort(t), httpPort, time.Hour)
	cfg := testserver.Config(t, testdb.NewURL(t, "sqlite"))
	cfg.ServerName = "acme.test"
	cfg.Listen.ClientTLS = true
	cfg.Federation.Enabled = true
	cfg.ACME = config.ACME{Domain: "acme.test", CAFile: ca.File(), DirectoryURL: dirURL, HTTPListen: "127.0.0.1:" + strconv.Itoa(httpPort)}
	s := testserver.StartConfig(t, cfg)
	cert, err := handshake(t, s.Addr("client"), "acme.test", roots)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if cert.DNSNames[0] != "acme.test" {
		t.Fatalf("certificate for %v", cert.DNSNames)
	}
	// A restart serves the certificate kept in the data directory, not
	// a new one from the CA (Let's Encrypt limits how many it issues).
	s.Restart()
	again, err := handshake(t, s.Addr("client"), "acme.test", roots)
	if err != nil {
		t.Fatalf("handshake after a restart: %v", err)
	}
	if again.SerialNumber.Cmp(cert.SerialNumber) != 0 {
		t.Fatalf("after a restart the server got a new certificate (serial %v, before %v)", again.SerialNumber, cert.SerialNumber)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", "http://127.0.0.1:"+strconv.Itoa(httpPort)+"/_matrix/client/versions", nil)
	req.Host = "acme.test"
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || loc != "https://acme.test/_matrix/client/versions" {
		t.Fatalf("plain HTTP: %d to %q, want a redirect to https", resp.StatusCode, loc)
	}
}
