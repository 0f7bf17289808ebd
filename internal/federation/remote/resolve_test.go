package remote

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/outbound"
)

// fakeResolver is a resolver whose well-known requests go to one test
// server (whatever host they name) and whose SRV records come from a map.
func fakeResolver(t *testing.T, wellKnown http.HandlerFunc, srv map[string][]*net.SRV) (*Resolver, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/matrix/server" {
			http.NotFound(w, r)
			return
		}
		hits.Add(1)
		wellKnown(w, r)
	}))
	t.Cleanup(ts.Close)
	r := NewResolver(nil, nil, nil)
	addr := ts.Listener.Addr().String()
	r.client.Transport = &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}
	r.lookupSRV = func(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
		if recs, ok := srv["_"+service+"._"+proto+"."+name]; ok {
			return "", recs, nil
		}
		return "", nil, errors.New("no such record")
	}
	return r, &hits
}

func serve(body string, header map[string]string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for k, v := range header {
			w.Header().Set(k, v)
		}
		if body == "" {
			http.NotFound(w, nil)
			return
		}
		w.Write([]byte(body))
	}
}

// TestResolve walks the server-server spec's resolution steps.
func TestResolve(t *testing.T) {
	tests := []struct {
		name      string
		server    string
		wellKnown string
		srv       map[string][]*net.SRV
		want      []Destination
	}{
		{name: "IPv4 literal", server: "1.2.3.4",
			want: []Destination{{Addr: "1.2.3.4:8448", Host: "1.2.3.4", TLSName: "1.2.3.4"}}},
		{name: "IPv4 literal with port", server: "1.2.3.4:1234",
			want: []Destination{{Addr: "1.2.3.4:1234", Host: "1.2.3.4:1234", TLSName: "1.2.3.4"}}},
		{name: "IPv6 literal", server: "[::1]",
			want: []Destination{{Addr: "[::1]:8448", Host: "[::1]", TLSName: "::1"}}},
		{name: "IPv6 literal with port", server: "[::1]:99",
			want: []Destination{{Addr: "[::1]:99", Host: "[::1]:99", TLSName: "::1"}}},
		{name: "hostname with port skips discovery", server: "example.org:1234", wellKnown: `{"m.server":"other.org"}`,
			want: []Destination{{Addr: "example.org:1234", Host: "example.org:1234", TLSName: "example.org"}}},
		{name: "well-known to a host and port", server: "example.org", wellKnown: `{"m.server":"matrix.example.org:443"}`,
			want: []Destination{{Addr: "matrix.example.org:443", Host: "matrix.example.org:443", TLSName: "matrix.example.org"}}},
		{name: "well-known to an IP literal", server: "example.org", wellKnown: `{"m.server":"5.6.7.8"}`,
			want: []Destination{{Addr: "5.6.7.8:8448", Host: "5.6.7.8", TLSName: "5.6.7.8"}}},
		{name: "well-known to a host with SRV", server: "example.org", wellKnown: `{"m.server":"matrix.example.org"}`,
			srv:  map[string][]*net.SRV{"_matrix-fed._tcp.matrix.example.org": {{Target: "fed.example.org.", Port: 8000}}},
			want: []Destination{{Addr: "fed.example.org:8000", Host: "matrix.example.org", TLSName: "matrix.example.org"}}},
		{name: "well-known to a host with the deprecated SRV", server: "example.org", wellKnown: `{"m.server":"matrix.example.org"}`,
			srv:  map[string][]*net.SRV{"_matrix._tcp.matrix.example.org": {{Target: "old.example.org.", Port: 8001}}},
			want: []Destination{{Addr: "old.example.org:8001", Host: "matrix.example.org", TLSName: "matrix.example.org"}}},
		{name: "well-known to a host without SRV", server: "example.org", wellKnown: `{"m.server":"matrix.example.org"}`,
			want: []Destination{{Addr: "matrix.example.org:8448", Host: "matrix.example.org", TLSName: "matrix.example.org"}}},
		{name: "no well-known, SRV", server: "example.org",
			srv: map[string][]*net.SRV{
				"_matrix-fed._tcp.example.org": {{Target: "a.example.org.", Port: 1}},
				"_matrix._tcp.example.org":     {{Target: "b.example.org.", Port: 2}},
			},
			want: []Destination{{Addr: "a.example.org:1", Host: "example.org", TLSName: "example.org"}}},
		{name: "no well-known, no SRV", server: "example.org",
			want: []Destination{{Addr: "example.org:8448", Host: "example.org", TLSName: "example.org"}}},
		{name: "invalid well-known is ignored", server: "example.org", wellKnown: `{"m.server": 3}`,
			want: []Destination{{Addr: "example.org:8448", Host: "example.org", TLSName: "example.org"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := fakeResolver(t, serve(tt.wellKnown, nil), tt.srv)
			got, err := r.Resolve(context.Background(), tt.server)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Resolve(%s) = %+v, want %+v", tt.server, got, tt.want)
			}
		})
	}
}

// TestResolveRefusesInvalidNames checks that names outside the
// server-name grammar are refused before any lookup: no well-known
// request, no SRV query.
func TestResolveRefusesInvalidNames(t *testing.T) {
	r, hits := fakeResolver(t, serve(`{"m.server":"example.org:8448"}`, nil), nil)
	var srvLookups int
	r.lookupSRV = func(context.Context, string, string, string) (string, []*net.SRV, error) {
		srvLookups++
		return "", nil, errors.New("no such record")
	}
	for _, name := range []string{
		"", "evil.org/path", "evil.org?x=1", "user@evil.org", "evil.org#x", "a b.org", "evil.org\x00",
		"a..b", ".evil.org", "evil.org.", "[::1%25x]", "[::1%x]:8448", "[not-ip]", "evil.org:0",
		"evil.org:+80", "evil.org:65536", "evil.org:", "évil.org", strings.Repeat("a", 256),
	} {
		if got, err := r.Resolve(context.Background(), name); err == nil {
			t.Errorf("Resolve(%q) = %+v, want an error", name, got)
		}
	}
	if hits.Load() != 0 || srvLookups != 0 {
		t.Fatalf("invalid names led to %d well-known requests and %d SRV lookups, want none", hits.Load(), srvLookups)
	}
}

// TestResolveStaticAddresses: configured addresses win over discovery.
func TestResolveStaticAddresses(t *testing.T) {
	r := NewResolver(map[string]string{"hs1.test": "127.0.0.11:9000"}, nil, nil)
	got, err := r.Resolve(context.Background(), "hs1.test")
	if err != nil {
		t.Fatal(err)
	}
	want := []Destination{{Addr: "127.0.0.11:9000", Host: "hs1.test", TLSName: "hs1.test"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

// TestWellKnownCaching: answers are cached as their headers say (24 h
// without headers, at most 48 h), failures for an hour.
func TestWellKnownCaching(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		name    string
		body    string
		header  map[string]string
		fresh   time.Duration // still cached after this long
		expired time.Duration // asked again after this long
	}{
		{"no headers: a day", `{"m.server":"m.example.org:443"}`, nil, 23 * time.Hour, 25 * time.Hour},
		{"max-age", `{"m.server":"m.example.org:443"}`, map[string]string{"Cache-Control": "public, max-age=600"}, 9 * time.Minute, 11 * time.Minute},
		{"max-age capped at 48h", `{"m.server":"m.example.org:443"}`, map[string]string{"Cache-Control": "max-age=604800"}, 47 * time.Hour, 49 * time.Hour},
		{"expires", `{"m.server":"m.example.org:443"}`, map[string]string{"Expires": now.Add(2 * time.Hour).Format(http.TimeFormat)}, time.Hour, 3 * time.Hour},
		{"error: an hour", "", nil, 59 * time.Minute, 61 * time.Minute},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, hits := fakeResolver(t, serve(tt.body, tt.header), nil)
			clock := now
			r.now = func() time.Time { return clock }
			resolve := func() {
				if _, err := r.Resolve(context.Background(), "example.org"); err != nil {
					t.Fatal(err)
				}
			}
			resolve()
			clock = now.Add(tt.fresh)
			resolve()
			if hits.Load() != 1 {
				t.Fatalf("asked %d times within the cache lifetime", hits.Load())
			}
			clock = now.Add(tt.expired)
			resolve()
			if hits.Load() != 2 {
				t.Fatalf("asked %d times after the cache lifetime, want 2", hits.Load())
			}
		})
	}
}

// TestWellKnownTooLarge: a document over 50 KiB is an error.
func TestWellKnownTooLarge(t *testing.T) {
	r, _ := fakeResolver(t, serve(`{"m.server":"m.example.org:443","pad":"`+strings.Repeat("x", 60<<10)+`"}`, nil), nil)
	got, err := r.Resolve(context.Background(), "example.org")
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Addr != "example.org:8448" {
		t.Fatalf("a too large well-known was used: %+v", got)
	}
}

// TestWellKnownOutboundPolicy: .well-known requests go through the
// outbound policy, at dial time and on redirects: the server name and
// the redirect target are whoever names the server's choice.
func TestWellKnownOutboundPolicy(t *testing.T) {
	var away atomic.Bool
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if away.Load() {
			// 127.0.0.2 is loopback too, but off the allow list below.
			_, port, _ := net.SplitHostPort(r.Host)
			http.Redirect(w, r, "https://127.0.0.2:"+port+"/.well-known/matrix/server", http.StatusFound)
			return
		}
		w.Write([]byte(`{"m.server": "delegated.test:443"}`))
	}))
	t.Cleanup(ts.Close)
	roots := ts.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	host := ts.Listener.Addr().String()

	if _, _, err := NewResolver(nil, roots, nil).fetchWellKnown(context.Background(), host); !errors.Is(err, outbound.ErrRefused) {
		t.Fatalf("default policy: %v, want ErrRefused", err)
	}
	allow, err := outbound.New(nil, []string{"127.0.0.1/32"})
	if err != nil {
		t.Fatal(err)
	}
	r := NewResolver(nil, roots, allow)
	if server, _, err := r.fetchWellKnown(context.Background(), host); err != nil || server != "delegated.test:443" {
		t.Fatalf("allowed: %q %v", server, err)
	}
	away.Store(true)
	if _, _, err := r.fetchWellKnown(context.Background(), host); !errors.Is(err, outbound.ErrRefused) {
		t.Fatalf("redirect to 127.0.0.2: %v, want ErrRefused", err)
	}
}
