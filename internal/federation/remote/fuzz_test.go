package remote

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/config"
)

// FuzzParseWellKnown: /.well-known/matrix/server comes from any host a
// server name points at; the delegated name it yields is a server name.
func FuzzParseWellKnown(f *testing.F) {
	for _, s := range []string{`{"m.server":"matrix.example.org:443"}`, `{"m.server":"[::1]:8448"}`, `{"m.server":""}`, `{}`, `[]`,
		`{"m.server":"evil.test/path?x#y"}`, `{"m.server":"a b"}`, `{"m.server":"\u0000"}`, `{"m.server":"x:+1"}`, `{"m.server":1}`,
		`{"m.server":"http://x"}`, `{"m.server":"user@host"}`, `{"m.server":"[::1%25lo]"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		server, err := parseWellKnown(body)
		if err != nil {
			return
		}
		if err := config.ValidateServerName(server); err != nil {
			t.Fatalf("delegated to %q: %v", server, err)
		}
	})
}

// FuzzCacheTTL: a well-known answer's Cache-Control and Expires are the
// other server's; the time it is kept stays within the spec's bounds.
func FuzzCacheTTL(f *testing.F) {
	for _, s := range [][2]string{{"max-age=3600", ""}, {"no-store", ""}, {"max-age=99999999999", ""}, {"max-age=9223372036854775807", ""},
		{"max-age=-1", ""}, {"public, MAX-AGE=5", ""}, {"", "Wed, 21 Oct 2015 07:28:00 GMT"}, {"", "Fri, 31 Dec 9999 23:59:59 GMT"}, {"max-age=x", "x"}} {
		f.Add(s[0], s[1])
	}
	now := time.Unix(1700000000, 0)
	f.Fuzz(func(t *testing.T, cc, expires string) {
		h := http.Header{"Cache-Control": {cc}, "Expires": {expires}}
		if ttl := cacheTTL(h, now); ttl < 0 || ttl > wellKnownMaxTTL {
			t.Fatalf("Cache-Control %q, Expires %q: ttl %v", cc, expires, ttl)
		}
	})
}

// FuzzResolve: server names from identifiers, X-Matrix origins and
// well-known answers. A name of the grammar with an IP literal or a port
// resolves, without lookups, to a dialable address with that host and
// port and a certificate name without brackets; no name makes Resolve
// fail any other way than with an error.
func FuzzResolve(f *testing.F) {
	for _, s := range []string{"example.org:8448", "1.2.3.4", "[::1]", "[::1]:443", "[::1", "a:", ":1", "", "[]", "[::1]x", "a:b:c", "\x00:1",
		"[::ffff:1.2.3.4]:8448", "example.org"} {
		f.Add(s)
	}
	r := NewResolver(nil, nil, nil)
	r.lookupSRV = func(context.Context, string, string, string) (string, []*net.SRV, error) {
		return "", nil, errors.New("no DNS here")
	}
	r.client = &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, errors.New("no network here") })}
	f.Fuzz(func(t *testing.T, name string) {
		dests, err := r.Resolve(context.Background(), name)
		if config.ValidateServerName(name) != nil {
			return
		}
		host, port := splitServerName(name)
		if port != "" && host+":"+port != name || port == "" && host != name {
			t.Fatalf("split %q into %q and %q", name, host, port)
		}
		if err != nil || len(dests) == 0 {
			t.Fatalf("%q did not resolve: %v", name, err)
		}
		for _, d := range dests {
			h, p, err := net.SplitHostPort(d.Addr)
			if err != nil || p == "" || h == "" || strings.ContainsAny(d.TLSName, "[]") || d.Host != name {
				t.Fatalf("%q resolved to %+v", name, d)
			}
			if isIPLiteral(host) || port != "" {
				if want := strings.Trim(host, "[]"); h != want || port != "" && p != port {
					t.Fatalf("%q resolved to %+v", name, d)
				}
			}
		}
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// FuzzSRV: SRV answers come from the DNS of whoever owns a server name.
// Every destination built from them is a dialable host:port, presented
// with the server name's Host and certificate name, never the target's.
// Targets are domain names, as net.LookupSRV guarantees (it drops the
// records whose target is not one).
func FuzzSRV(f *testing.F) {
	for _, s := range []struct {
		target string
		port   uint16
	}{{"matrix.example.org.", 8448}, {".", 0}, {"", 443}, {"[::1]", 1}, {"a b", 2}, {"x\x00", 3}, {"::1", 4}} {
		f.Add(s.target, s.port, "example.org")
	}
	f.Fuzz(func(t *testing.T, target string, port uint16, host string) {
		if config.ValidateServerName(host) != nil || strings.Contains(host, ":") ||
			strings.Trim(target, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") != "" || len(target) > 254 {
			return
		}
		r := NewResolver(nil, nil, nil)
		r.lookupSRV = func(context.Context, string, string, string) (string, []*net.SRV, error) {
			return "", []*net.SRV{{Target: target, Port: port}}, nil
		}
		for _, d := range r.srvOrDefault(context.Background(), host, host) {
			h, p, err := net.SplitHostPort(d.Addr)
			if err != nil || h == "" || p == "" || d.Host != host || d.TLSName != host {
				t.Fatalf("SRV %q:%d for %q gave %+v", target, port, host, d)
			}
		}
	})
}
