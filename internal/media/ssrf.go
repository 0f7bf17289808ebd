package media

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// URL previews fetch addresses users choose. Without a guard a user
// could read the server's own network (cloud metadata, admin ports), so
// every address is checked against the ranges below: the URL's host, each
// redirect's, and again at dial time, the only check DNS rebinding (a
// name answering a public address first and a private one next) cannot
// get past.

// blockedRanges are never fetched unless allow-listed: loopback,
// private, CGNAT, link-local, unique-local, multicast, unspecified,
// documentation and reserved (Synapse's url_preview_ip_range_blacklist).
var blockedRanges = mustPrefixes(
	"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
	"192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
	"203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
	"::/128", "::1/128", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32", "2002::/16",
	"fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
)

func mustPrefixes(cidrs ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(cidrs))
	for i, c := range cidrs {
		out[i] = netip.MustParsePrefix(c)
	}
	return out
}

// errBlocked is a refused address.
var errBlocked = errors.New("address is not allowed")

// guard decides which addresses may be fetched.
type guard struct{ allow []netip.Prefix }

func newGuard(allow []string) (*guard, error) {
	g := &guard{}
	for _, c := range allow {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("media: ip_range_whitelist: %w", err)
		}
		g.allow = append(g.allow, p.Masked())
	}
	return g, nil
}

func (g *guard) allowed(ip netip.Addr) bool {
	ip = ip.Unmap() // ::ffff:127.0.0.1 is 127.0.0.1
	for _, p := range g.allow {
		if p.Contains(ip) {
			return true
		}
	}
	for _, p := range blockedRanges {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// checkURL refuses other schemes than http and https, and hosts any of
// whose addresses is refused.
func (g *guard) checkURL(ctx context.Context, u *url.URL) error {
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("scheme %q: only http and https are fetched", u.Scheme)
	}
	host := u.Hostname()
	if host == "" {
		return errors.New("no host")
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if !g.allowed(ip) {
			return fmt.Errorf("%s: %w", ip, errBlocked)
		}
		return nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("resolving %s: %w", host, err)
	}
	for _, ip := range addrs {
		if !g.allowed(ip) {
			return fmt.Errorf("%s resolves to %s: %w", host, ip, errBlocked)
		}
	}
	return nil
}

// control runs on every connection just before it is made, with the
// address actually dialled.
func (g *guard) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("dialling %s: %w", address, errBlocked)
	}
	if !g.allowed(ap.Addr()) {
		return fmt.Errorf("dialling %s: %w", ap.Addr(), errBlocked)
	}
	return nil
}

// client is an HTTP client that only reaches allowed addresses, with no
// proxy (a proxy would dial for us, unchecked) and at most ten redirects.
func (g *guard) client(timeout time.Duration, userAgent string) *http.Client {
	dialer := &net.Dialer{Timeout: timeout, Control: g.control}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       time.Minute,
	}
	return &http.Client{
		Transport: userAgentTransport{tr, userAgent},
		Timeout:   timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return errors.New("too many redirects")
			}
			return g.checkURL(req.Context(), req.URL)
		},
	}
}

type userAgentTransport struct {
	rt http.RoundTripper
	ua string
}

func (t userAgentTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("User-Agent", t.ua)
	return t.rt.RoundTrip(r)
}
