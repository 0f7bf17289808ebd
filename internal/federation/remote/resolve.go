package remote

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/myelin-chat/myelin/internal/cache"
	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/outbound"
)

// Well-known caching follows the server-server spec ("Resolving server
// names"): a successful answer is kept as long as its Cache-Control or
// Expires says, 24 hours when it says nothing and never more than 48;
// a failure is remembered for an hour, so that servers without the file
// are not asked on every request.
const (
	wellKnownDefaultTTL = 24 * time.Hour
	wellKnownMaxTTL     = 48 * time.Hour
	wellKnownErrorTTL   = time.Hour
	// Synapse reads at most 50 KiB of a well-known document.
	wellKnownMaxBytes = 50 << 10
	wellKnownTimeout  = 10 * time.Second
	defaultFedPort    = "8448"
)

// Destination is where requests for a server name go.
type Destination struct {
	// Addr is the host:port to connect to.
	Addr string
	// Host is the Host header to send.
	Host string
	// TLSName is the name the certificate must be valid for (and the SNI).
	TLSName string
}

type wellKnownEntry struct {
	server  string // the delegated server name, "" when there is none
	expires time.Time
}

// Resolver turns server names into destinations: static addresses from
// the configuration first, then the spec's steps (IP literal, explicit
// port, /.well-known/matrix/server, SRV _matrix-fed._tcp then
// _matrix._tcp, port 8448).
type Resolver struct {
	static    map[string]string
	client    *http.Client
	lookupSRV func(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
	now       func() time.Time

	// wellKnown caches delegations; an entry past its expiry is fetched
	// again, and the least recently used go when it is full.
	wellKnown *cache.LRU[string, wellKnownEntry]
}

// discoveryCacheSize bounds the resolver's and the transport's caches:
// any server name a room or a request mentions lands in them.
const discoveryCacheSize = 10_000

// NewResolver makes a resolver whose well-known requests trust roots
// and connect only where policy permits (nil: outbound.Default()).
func NewResolver(static map[string]string, roots *x509.CertPool, policy *outbound.Policy) *Resolver {
	if policy == nil {
		policy = outbound.Default()
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		DialContext:         policy.Dialer(5 * time.Second).DialContext,
		TLSHandshakeTimeout: 5 * time.Second,
	}
	r := &Resolver{
		static:    static,
		lookupSRV: net.DefaultResolver.LookupSRV,
		now:       time.Now,
		wellKnown: cache.NewLRU[string, wellKnownEntry](discoveryCacheSize),
	}
	r.client = &http.Client{Transport: tr, Timeout: wellKnownTimeout,
		// Redirects are followed (the spec allows them), a few at most.
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			return policy.CheckURL(req.Context(), req.URL)
		}}
	return r
}

// splitServerName splits a server name into host and port ("" if none).
func splitServerName(name string) (host, port string) {
	if strings.HasPrefix(name, "[") {
		if i := strings.Index(name, "]"); i >= 0 {
			host, rest := name[:i+1], name[i+1:]
			return host, strings.TrimPrefix(rest, ":")
		}
		return name, ""
	}
	if i := strings.LastIndexByte(name, ':'); i >= 0 {
		return name[:i], name[i+1:]
	}
	return name, ""
}

func isIPLiteral(host string) bool {
	return net.ParseIP(strings.Trim(host, "[]")) != nil
}

// Resolve returns the destinations to try for a server name, in order.
func (r *Resolver) Resolve(ctx context.Context, serverName string) ([]Destination, error) {
	// A name outside the grammar (a path, userinfo, a zoned IPv6
	// literal, a NUL) must reach neither DNS nor a well-known URL built
	// from it: names come from events and requests of other servers.
	if err := config.ValidateServerName(serverName); err != nil {
		return nil, fmt.Errorf("federation: invalid server name: %w", err)
	}
	host, port := splitServerName(serverName)
	if host == "" {
		return nil, fmt.Errorf("federation: invalid server name %q", serverName)
	}
	if addr, ok := r.static[serverName]; ok {
		return []Destination{{Addr: addr, Host: serverName, TLSName: strings.Trim(host, "[]")}}, nil
	}
	// 1. An IP literal: that address, the given port or 8448.
	// 2. A hostname with an explicit port: that host and port.
	if isIPLiteral(host) || port != "" {
		return []Destination{direct(serverName, host, port)}, nil
	}
	// 3. A delegation through /.well-known/matrix/server.
	if delegated := r.lookupWellKnown(ctx, host); delegated != "" {
		dhost, dport := splitServerName(delegated)
		if isIPLiteral(dhost) || dport != "" {
			return []Destination{direct(delegated, dhost, dport)}, nil
		}
		return r.srvOrDefault(ctx, delegated, dhost), nil
	}
	// 4.-6. SRV records of the server name itself, else port 8448.
	return r.srvOrDefault(ctx, serverName, host), nil
}

func direct(hostHeader, host, port string) Destination {
	if port == "" {
		port = defaultFedPort
	}
	bare := strings.Trim(host, "[]")
	return Destination{Addr: net.JoinHostPort(bare, port), Host: hostHeader, TLSName: bare}
}

// srvOrDefault looks up _matrix-fed._tcp, then the deprecated
// _matrix._tcp; without either the host's port 8448. The certificate
// must always be valid for the name looked up, not the SRV target.
func (r *Resolver) srvOrDefault(ctx context.Context, hostHeader, host string) []Destination {
	for _, service := range []string{"matrix-fed", "matrix"} {
		_, records, err := r.lookupSRV(ctx, service, "tcp", host)
		if err != nil || len(records) == 0 {
			continue
		}
		var out []Destination
		for _, rec := range records {
			target := strings.TrimSuffix(rec.Target, ".")
			if target == "" {
				continue
			}
			out = append(out, Destination{Addr: net.JoinHostPort(target, strconv.Itoa(int(rec.Port))), Host: hostHeader, TLSName: host})
		}
		if len(out) > 0 {
			return out
		}
	}
	return []Destination{{Addr: net.JoinHostPort(host, defaultFedPort), Host: hostHeader, TLSName: host}}
}

// lookupWellKnown returns the delegated server name of host, "" if none,
// from the cache when it is fresh.
func (r *Resolver) lookupWellKnown(ctx context.Context, host string) string {
	now := r.now()
	e, ok := r.wellKnown.Get(host)
	if ok && now.Before(e.expires) {
		return e.server
	}
	server, ttl, err := r.fetchWellKnown(ctx, host)
	if err != nil {
		server, ttl = "", wellKnownErrorTTL
	}
	r.wellKnown.Put(host, wellKnownEntry{server: server, expires: now.Add(ttl)})
	return server
}

func (r *Resolver) fetchWellKnown(ctx context.Context, host string) (string, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+host+"/.well-known/matrix/server", nil)
	if err != nil {
		return "", 0, err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", 0, fmt.Errorf("well-known: status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, wellKnownMaxBytes+1))
	if err != nil {
		return "", 0, err
	}
	if len(body) > wellKnownMaxBytes {
		return "", 0, errors.New("well-known: document too large")
	}
	server, err := parseWellKnown(body)
	if err != nil {
		return "", 0, err
	}
	return server, cacheTTL(resp.Header, r.now()), nil
}

// parseWellKnown reads the delegated server name of a
// /.well-known/matrix/server document. Like Synapse, it refuses an
// m.server that is not a server name: the name becomes the address
// dialled and the Host header sent.
func parseWellKnown(body []byte) (string, error) {
	var doc struct {
		Server string `json:"m.server"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("well-known: %w", err)
	}
	if doc.Server == "" {
		return "", errors.New("well-known: no m.server")
	}
	if err := config.ValidateServerName(doc.Server); err != nil {
		return "", fmt.Errorf("well-known: m.server: %w", err)
	}
	return doc.Server, nil
}

// cacheTTL reads how long a response may be cached, within the spec's bounds.
func cacheTTL(h http.Header, now time.Time) time.Duration {
	ttl := wellKnownDefaultTTL
	found := false
	for _, d := range strings.Split(h.Get("Cache-Control"), ",") {
		d = strings.TrimSpace(strings.ToLower(d))
		if d == "no-store" || d == "no-cache" {
			return 0
		}
		if v, ok := strings.CutPrefix(d, "max-age="); ok {
			// Capped before it becomes a Duration, which a large
			// max-age would overflow into a negative TTL.
			if n, err := strconv.Atoi(v); err == nil && n >= 0 {
				ttl, found = time.Duration(min(n, int(wellKnownMaxTTL/time.Second)))*time.Second, true
			}
		}
	}
	if !found {
		if exp, err := http.ParseTime(h.Get("Expires")); err == nil {
			ttl = max(exp.Sub(now), 0)
		}
	}
	return min(ttl, wellKnownMaxTTL)
}

// Transport carries requests for matrix:// URLs (as gomatrixserverlib's
// federation client makes them) to the destination the resolver finds,
// over TLS verified against the configured roots with the right SNI,
// connecting only where the outbound policy permits: the address is
// whatever the server name, its .well-known or its SRV records say, all
// chosen by whoever names the server.
type Transport struct {
	resolver *Resolver
	roots    *x509.CertPool
	policy   *outbound.Policy

	mu sync.Mutex
	// byTLSName keeps one HTTP transport per certificate name, since the
	// TLS server name is per transport, not per connection. An evicted
	// transport's idle connections close after its IdleConnTimeout.
	byTLSName *cache.LRU[string, *http.Transport]
}

// NewTransport makes a federation transport (policy nil:
// outbound.Default()).
func NewTransport(resolver *Resolver, roots *x509.CertPool, policy *outbound.Policy) *Transport {
	if policy == nil {
		policy = outbound.Default()
	}
	return &Transport{resolver: resolver, roots: roots, policy: policy, byTLSName: cache.NewLRU[string, *http.Transport](discoveryCacheSize)}
}

func (t *Transport) transport(tlsName string) *http.Transport {
	t.mu.Lock()
	defer t.mu.Unlock()
	tr, ok := t.byTLSName.Get(tlsName)
	if !ok {
		tr = &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: t.roots, ServerName: tlsName, MinVersion: tls.VersionTLS12},
			DialContext:         t.policy.Dialer(5 * time.Second).DialContext,
			TLSHandshakeTimeout: 10 * time.Second,
			// As many as the /event requests kept in flight to one
			// server (eventfetch.go): fewer, and every round of them
			// closes and dials connections again, a TLS handshake each.
			MaxIdleConnsPerHost: eventFetchesInFlight,
			IdleConnTimeout:     90 * time.Second,
			ForceAttemptHTTP2:   true,
		}
		t.byTLSName.Put(tlsName, tr)
	}
	return tr
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "matrix" && req.URL.Scheme != "matrix-federation" {
		return nil, fmt.Errorf("federation: unexpected URL scheme %q", req.URL.Scheme)
	}
	dests, err := t.resolver.Resolve(req.Context(), req.URL.Host)
	if err != nil {
		return nil, err
	}
	var lastErr error
	for i, d := range dests {
		r := req
		if i > 0 {
			// A body already sent to the first destination must be read again.
			if req.GetBody == nil && req.Body != nil && req.Body != http.NoBody {
				break
			}
			r = req.Clone(req.Context())
			if req.GetBody != nil {
				if r.Body, err = req.GetBody(); err != nil {
					return nil, err
				}
			}
		} else {
			r = req.Clone(req.Context())
		}
		u := *req.URL
		u.Scheme, u.Host = "https", d.Addr
		r.URL, r.Host = &u, d.Host
		resp, err := t.transport(d.TLSName).RoundTrip(r)
		if err == nil {
			return resp, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// CertPool returns the system roots plus the certificates in caFile.
func CertPool(caFile string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if caFile == "" {
		return pool, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("federation.ca_file: %w", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("federation.ca_file: no certificates in %s", caFile)
	}
	return pool, nil
}
