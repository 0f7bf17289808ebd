// Package outbound owns the one rule for connections the server makes on
// someone else's behalf: federation (a remote server, or anyone naming
// one in /_matrix/key/v2/query, picks the address), remote media, URL
// previews (a user picks the address) and push gateways (a user picks
// the URL). Without it any of them reaches the server's own network:
// cloud metadata, admin ports, the database.
//
// The check runs at dial time, on the address actually connected to
// after DNS resolution (net.Dialer.Control), so that redirects, SRV and
// .well-known targets and DNS rebinding (a name answering a public
// address first and a private one next) are all covered by the same
// place; redirect targets are checked again before they are followed.
package outbound

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrRefused is a connection the policy does not allow.
var ErrRefused = errors.New("outbound: address not allowed")

// DefaultDeny are the ranges never connected to unless allow-listed:
// Synapse's DEFAULT_IP_RANGE_BLACKLIST and more (IANA's special-purpose
// registries for IPv4 and IPv6). The IPv6 forms that wrap an IPv4
// address, IPv4-translated (RFC 2765), NAT64 (RFC 6052, RFC 8215), 6to4
// (RFC 3056) and IPv4-compatible, are refused whole: whatever they wrap
// may be a private network behind a translator. IPv4-mapped addresses
// (::ffff:a.b.c.d) are judged as the IPv4 address they are.
var DefaultDeny = []string{
	"0.0.0.0/8",       // "this network", unspecified
	"10.0.0.0/8",      // private
	"100.64.0.0/10",   // CGNAT shared address space
	"127.0.0.0/8",     // loopback
	"169.254.0.0/16",  // link-local (cloud metadata)
	"172.16.0.0/12",   // private
	"192.0.0.0/24",    // IETF protocol assignments
	"192.0.2.0/24",    // documentation (TEST-NET-1)
	"192.88.99.0/24",  // 6to4 relay anycast
	"192.168.0.0/16",  // private
	"198.18.0.0/15",   // benchmarking
	"198.51.100.0/24", // documentation (TEST-NET-2)
	"203.0.113.0/24",  // documentation (TEST-NET-3)
	"224.0.0.0/4",     // multicast
	"240.0.0.0/4",     // reserved, and 255.255.255.255 broadcast
	"::/96",           // unspecified, loopback, IPv4-compatible
	"::ffff:0:0:0/96", // IPv4-translated
	"64:ff9b::/96",    // NAT64 well-known prefix
	"64:ff9b:1::/48",  // NAT64 local use
	"100::/64",        // discard-only
	"2001::/23",       // IETF protocol assignments (Teredo, ORCHID, ...)
	"2001:db8::/32",   // documentation
	"2002::/16",       // 6to4
	"3fff::/20",       // documentation
	"5f00::/16",       // segment routing SIDs
	"fc00::/7",        // unique-local
	"fe80::/10",       // link-local
	"fec0::/10",       // site-local (deprecated)
	"ff00::/8",        // multicast
}

var defaultDeny = mustPrefixes(DefaultDeny)

func mustPrefixes(cidrs []string) []netip.Prefix {
	out, err := ParsePrefixes(cidrs)
	if err != nil {
		panic(err)
	}
	return out
}

// ParsePrefixes parses CIDRs (a single address is written /32 or /128,
// so that a forgotten prefix length is never read as a network).
func ParsePrefixes(cidrs []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(cidrs))
	for _, c := range cidrs {
		c = strings.TrimSpace(c)
		if c == "" {
			continue
		}
		p, err := parsePrefix(c)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid CIDR %q", s)
	}
	return p.Masked(), nil
}

// Policy decides which addresses may be connected to.
type Policy struct {
	deny  []netip.Prefix
	allow []netip.Prefix
}

// New makes a policy refusing DefaultDeny plus deny, except the
// addresses in allow.
func New(deny, allow []string) (*Policy, error) {
	d, err := ParsePrefixes(deny)
	if err != nil {
		return nil, fmt.Errorf("deny: %w", err)
	}
	a, err := ParsePrefixes(allow)
	if err != nil {
		return nil, fmt.Errorf("allow: %w", err)
	}
	return &Policy{deny: append(append([]netip.Prefix{}, defaultDeny...), d...), allow: a}, nil
}

// Default is the policy of no configuration: DefaultDeny, nothing allowed.
func Default() *Policy {
	p, _ := New(nil, nil)
	return p
}

// With returns a copy of p that also refuses deny and also allows allow
// (federation's extra deny list, the URL preview's own allow list).
func (p *Policy) With(deny, allow []string) (*Policy, error) {
	q, err := New(deny, allow)
	if err != nil {
		return nil, err
	}
	q.deny = append(append([]netip.Prefix{}, p.deny...), q.deny[len(defaultDeny):]...)
	q.allow = append(append([]netip.Prefix{}, p.allow...), q.allow...)
	return q, nil
}

// Permits reports whether ip may be connected to. An address with an
// IPv6 zone never is: a prefix never contains it (netip.Prefix.Contains
// is false for zoned addresses), so it would slip past every range, and
// no server on the internet is reached through a zone.
func (p *Policy) Permits(ip netip.Addr) bool {
	if !ip.IsValid() || ip.Zone() != "" {
		return false
	}
	ip = ip.Unmap() // ::ffff:127.0.0.1 is 127.0.0.1
	for _, r := range p.allow {
		if r.Contains(ip) {
			return true
		}
	}
	for _, r := range p.deny {
		if r.Contains(ip) {
			return false
		}
	}
	return true
}

// Control is a net.Dialer.Control: it runs with the address actually
// dialled, after resolution, before any packet leaves.
func (p *Policy) Control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !p.Permits(ap.Addr()) {
		return fmt.Errorf("dialling %s: %w", address, ErrRefused)
	}
	return nil
}

// Dialer is a dialer that only connects where the policy permits.
func (p *Policy) Dialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{Timeout: timeout, Control: p.Control}
}

// CheckURL refuses other schemes than http and https, URLs without a
// host, and hosts that are or resolve to a refused address. It is the
// early check of a URL (and of each redirect); the dial-time check stays
// the one that counts.
func (p *Policy) CheckURL(ctx context.Context, u *url.URL) error {
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("scheme %q: only http and https are fetched", u.Scheme)
	}
	host := u.Hostname()
	if host == "" {
		return errors.New("no host")
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if !p.Permits(ip) {
			return fmt.Errorf("%s: %w", host, ErrRefused)
		}
		return nil
	}
	if strings.ContainsAny(host, "%[]") {
		// Not an address and not a DNS name: "[::1%25x]" and the like.
		return fmt.Errorf("host %q: %w", host, ErrRefused)
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("resolving %s: %w", host, err)
	}
	for _, ip := range addrs {
		if !p.Permits(ip) {
			return fmt.Errorf("%s resolves to %s: %w", host, ip, ErrRefused)
		}
	}
	return nil
}

// ClientOptions shape an HTTP client of the policy.
type ClientOptions struct {
	// Timeout bounds one request, redirects included.
	Timeout time.Duration
	// UserAgent, when set, replaces the caller's.
	UserAgent string
	// MaxRedirects bounds the redirects followed (0: none).
	MaxRedirects int
}

// Client is an HTTP client that only reaches permitted addresses, with
// no proxy (a proxy would dial for us, unchecked), every redirect
// checked before it is followed.
func (p *Policy) Client(o ClientOptions) *http.Client {
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           p.Dialer(o.Timeout).DialContext,
		TLSHandshakeTimeout:   o.Timeout,
		ResponseHeaderTimeout: o.Timeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       time.Minute,
	}
	var rt http.RoundTripper = tr
	if o.UserAgent != "" {
		rt = userAgentTransport{tr, o.UserAgent}
	}
	return &http.Client{
		Transport: rt,
		Timeout:   o.Timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > o.MaxRedirects {
				return errors.New("too many redirects")
			}
			return p.CheckURL(req.Context(), req.URL)
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
