package selfcheck_test

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/selfcheck"
	"github.com/myelin-chat/myelin/internal/signing"
	"github.com/myelin-chat/myelin/internal/testdb"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// internetServer starts a server as it runs on the internet without a
// proxy: one TLS listener for both APIs with a certificate from ca for
// certName, delegation and client discovery through the well-known
// documents, changed by mutate.
func internetServer(t *testing.T, ca testserver.CA, name, certName string, mutate func(*config.Config)) *testserver.Server {
	t.Helper()
	cfg := testserver.Config(t, testdb.NewURL(t, "sqlite"))
	cfg.ServerName = name
	cfg.Listen.TLSCert, cfg.Listen.TLSKey = ca.Issue(t, certName)
	cfg.Listen.ClientTLS = true
	cfg.Federation.Enabled = true
	cfg.Federation.CAFile = ca.File()
	cfg.WellKnown.Server = name + ":443"
	cfg.WellKnown.ClientBaseURL = "https://" + name
	if mutate != nil {
		mutate(cfg)
	}
	return testserver.StartConfig(t, cfg)
}

func noSRV(context.Context, string, string, string) (string, []*net.SRV, error) {
	return "", nil, &net.DNSError{Err: "no such host", IsNotFound: true}
}

func key(t *testing.T, s *testserver.Server) (string, ed25519.PublicKey) {
	t.Helper()
	raw, err := os.ReadFile(s.Config.SigningKeyPath())
	if err != nil {
		t.Fatal(err)
	}
	k, err := signing.Parse(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	return k.ID, k.Public()
}

// find returns the finding of a check, failing the test if there is none.
func find(t *testing.T, fs []selfcheck.Finding, check string) selfcheck.Finding {
	t.Helper()
	for _, f := range fs {
		if f.Check == check {
			return f
		}
	}
	t.Fatalf("no %q finding in %+v", check, fs)
	return selfcheck.Finding{}
}

func dump(fs []selfcheck.Finding) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString(string(f.Level) + " " + f.Check + ": " + f.Detail + "\n")
	}
	return b.String()
}

// A healthy setup passes every check; three broken ones each fail where
// they are broken, with a fix.
func TestCheckServer(t *testing.T) {
	ca := testserver.NewCA(t)
	ctx := context.Background()
	checker := func(resolve map[string]string) *selfcheck.Checker {
		return selfcheck.New(selfcheck.Options{Roots: ca.Pool(), Resolve: resolve, LookupSRV: noSRV})
	}

	t.Run("healthy", func(t *testing.T) {
		s := internetServer(t, ca, "check.test", "check.test", nil)
		id, pub := key(t, s)
		fs := checker(map[string]string{"check.test:443": s.Addr("client")}).Server(ctx, "check.test", id, pub)
		if selfcheck.Failed(fs) {
			t.Fatalf("a healthy server failed:\n%s", dump(fs))
		}
		for _, c := range []string{"well-known server", "federation API", "signing keys", "client API"} {
			if f := find(t, fs, c); f.Level != selfcheck.OK {
				t.Errorf("%s: %+v", c, f)
			}
		}
		// The test CA's certificates last a day: time to renew.
		if f := find(t, fs, "TLS certificate"); f.Level != selfcheck.Warning || !strings.Contains(f.Detail, "expires in") {
			t.Errorf("a certificate that expires tomorrow: %+v", f)
		}
		// The same server checked as another one's name: its keys are
		// not that server's.
		other, _, _ := ed25519.GenerateKey(nil)
		fs = checker(map[string]string{"check.test:443": s.Addr("client")}).Server(ctx, "check.test", "ed25519:other", other)
		if f := find(t, fs, "signing keys"); f.Level != selfcheck.Error {
			t.Fatalf("keys of another server accepted: %+v", f)
		}
	})

	t.Run("certificate for another name", func(t *testing.T) {
		s := internetServer(t, ca, "check.test", "wrong.test", nil)
		fs := checker(map[string]string{"check.test:443": s.Addr("client"), "check.test:8448": s.Addr("client")}).Server(ctx, "check.test", "", nil)
		// The delegation document is refused for its certificate; the
		// fallback port (here the same listener) for the same reason.
		if f := find(t, fs, "well-known server"); f.Level != selfcheck.Error || !strings.Contains(f.Detail, "wrong.test") {
			t.Fatalf("well-known behind the wrong certificate: %+v\n%s", f, dump(fs))
		}
		f := find(t, fs, "TLS certificate")
		if f.Level != selfcheck.Error || !strings.Contains(f.Detail, "wrong.test") || f.Fix == "" {
			t.Fatalf("wrong certificate name: %+v\n%s", f, dump(fs))
		}
	})

	t.Run("no delegation and nothing on 8448", func(t *testing.T) {
		s := internetServer(t, ca, "check.test", "check.test", func(c *config.Config) { c.WellKnown.Server = "" })
		fs := checker(map[string]string{"check.test:443": s.Addr("client"), "check.test:8448": testserver.ClosedAddr(t)}).
			Server(ctx, "check.test", "", nil)
		if f := find(t, fs, "well-known server"); f.Level != selfcheck.Warning {
			t.Fatalf("missing delegation: %+v", f)
		}
		f := find(t, fs, "federation port")
		if f.Level != selfcheck.Error || !strings.Contains(f.Detail, "check.test:8448") || f.Fix == "" {
			t.Fatalf("unreachable 8448: %+v\n%s", f, dump(fs))
		}
	})

	t.Run("SRV records", func(t *testing.T) {
		s := internetServer(t, ca, "check.test", "check.test", func(c *config.Config) { c.WellKnown.Server = "" })
		srvFor := func(service string) func(context.Context, string, string, string) (string, []*net.SRV, error) {
			return func(ctx context.Context, svc, proto, name string) (string, []*net.SRV, error) {
				if svc != service || proto != "tcp" || name != "check.test" {
					return noSRV(ctx, svc, proto, name)
				}
				return "", []*net.SRV{{Target: "fed.check.test.", Port: 8448}}, nil
			}
		}
		resolve := map[string]string{"check.test:443": s.Addr("client"), "fed.check.test:8448": s.Addr("client"),
			"check.test:8448": testserver.ClosedAddr(t)}
		// _matrix-fed._tcp leads to the server: federation works, and
		// the certificate is checked for the server name, as the spec
		// (v1.8) says for SRV targets.
		fs := selfcheck.New(selfcheck.Options{Roots: ca.Pool(), Resolve: resolve, LookupSRV: srvFor("matrix-fed")}).Server(ctx, "check.test", "", nil)
		if f := find(t, fs, "SRV"); f.Level != selfcheck.OK || !strings.Contains(f.Detail, "fed.check.test:8448") {
			t.Fatalf("SRV record: %+v\n%s", f, dump(fs))
		}
		for _, c := range []string{"TLS certificate", "federation API", "signing keys"} {
			if f := find(t, fs, c); f.Level == selfcheck.Error {
				t.Fatalf("%s through the SRV record: %+v\n%s", c, f, dump(fs))
			}
		}
		// Only the deprecated _matrix._tcp: it still works, with a
		// warning to rename it.
		fs = selfcheck.New(selfcheck.Options{Roots: ca.Pool(), Resolve: resolve, LookupSRV: srvFor("matrix")}).Server(ctx, "check.test", "", nil)
		if f := find(t, fs, "SRV"); f.Level != selfcheck.Warning || !strings.Contains(f.Fix, "_matrix-fed._tcp") {
			t.Fatalf("deprecated SRV record: %+v\n%s", f, dump(fs))
		}
		if f := find(t, fs, "federation API"); f.Level != selfcheck.OK {
			t.Fatalf("federation through the deprecated SRV record: %+v\n%s", f, dump(fs))
		}
		// A certificate from a CA other servers do not trust (here: the
		// checker trusts another one) is a chain that does not verify.
		other := testserver.NewCA(t)
		fs = selfcheck.New(selfcheck.Options{Roots: other.Pool(), Resolve: resolve, LookupSRV: srvFor("matrix-fed")}).Server(ctx, "check.test", "", nil)
		if f := find(t, fs, "TLS certificate"); f.Level != selfcheck.Error || !strings.Contains(f.Detail, "does not verify") || f.Fix == "" {
			t.Fatalf("untrusted chain: %+v\n%s", f, dump(fs))
		}
	})

	t.Run("a proxy that strips CORS", func(t *testing.T) {
		s := internetServer(t, ca, "check.test", "check.test", func(c *config.Config) { c.WellKnown.ClientBaseURL = "https://matrix.check.test" })
		// matrix.check.test is a reverse proxy in front of the server
		// that drops Access-Control-Allow-Origin, as a misconfigured one
		// does: Element Web could not talk to the server.
		backend := &url.URL{Scheme: "https", Host: s.Addr("client")}
		proxy := httputil.NewSingleHostReverseProxy(backend)
		proxy.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), ServerName: "check.test"}}
		proxy.ModifyResponse = func(r *http.Response) error {
			r.Header.Del("Access-Control-Allow-Origin")
			return nil
		}
		certFile, keyFile := ca.Issue(t, "matrix.check.test")
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		front := httptest.NewUnstartedServer(proxy)
		front.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		front.StartTLS()
		t.Cleanup(front.Close)
		fs := checker(map[string]string{"check.test:443": s.Addr("client"), "matrix.check.test:443": front.Listener.Addr().String()}).
			Server(ctx, "check.test", "", nil)
		f := find(t, fs, "CORS")
		if f.Level != selfcheck.Error || !strings.Contains(f.Detail, "matrix.check.test/_matrix/client/versions") || f.Fix == "" {
			t.Fatalf("a client API without CORS: %+v\n%s", f, dump(fs))
		}
	})

	t.Run("client base URL that reaches nothing", func(t *testing.T) {
		s := internetServer(t, ca, "check.test", "check.test", func(c *config.Config) { c.WellKnown.ClientBaseURL = "https://matrix.check.test" })
		fs := checker(map[string]string{"check.test:443": s.Addr("client"), "matrix.check.test:443": testserver.ClosedAddr(t)}).
			Server(ctx, "check.test", "", nil)
		if f := find(t, fs, "federation API"); f.Level != selfcheck.OK {
			t.Fatalf("federation should still pass: %+v", f)
		}
		if f := find(t, fs, "client API"); f.Level != selfcheck.Error {
			t.Fatalf("unreachable base_url: %+v\n%s", f, dump(fs))
		}
	})
}

// Reachable asks the other server's key notary for this server's keys,
// which the other server must fetch from here.
func TestCheckReachable(t *testing.T) {
	ca := testserver.NewCA(t)
	ctx := context.Background()
	a := internetServer(t, ca, "a.test", "a.test", nil)
	b := internetServer(t, ca, "b.test", "b.test", func(c *config.Config) {
		c.Federation.Addresses = map[string]string{"a.test": a.Addr("client")}
	})
	checker := selfcheck.New(selfcheck.Options{Roots: ca.Pool(), LookupSRV: noSRV,
		Resolve: map[string]string{"a.test:443": a.Addr("client"), "b.test:443": b.Addr("client")}})
	fs := checker.Reachable(ctx, "a.test", "b.test")
	if selfcheck.Failed(fs) {
		t.Fatalf("b cannot reach a:\n%s", dump(fs))
	}
	// c.test exists nowhere b can reach.
	fs = checker.Reachable(ctx, "c.test", "b.test")
	if !selfcheck.Failed(fs) {
		t.Fatalf("b reached a server that does not exist:\n%s", dump(fs))
	}
}
