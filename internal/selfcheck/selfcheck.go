// Package selfcheck checks a server from the outside in, as a federation
// tester would: how its name resolves (/.well-known/matrix/server, SRV),
// its TLS certificate, its federation version and signing keys, the
// client discovery document with its CORS header, and whether another
// server can reach it. Each finding says what to fix.
package selfcheck

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/myelin-chat/myelin/internal/config"
)

// Level is how bad a finding is.
type Level string

// The levels: an error stops federation or clients, a warning will or
// may, ok is fine.
const (
	OK      Level = "ok"
	Warning Level = "warning"
	Error   Level = "error"
)

// Finding is the outcome of one check.
type Finding struct {
	Check  string `json:"check"`
	Level  Level  `json:"level"`
	Detail string `json:"detail"`
	// Fix says what to change, when something is wrong.
	Fix string `json:"fix,omitempty"`
}

// Options set up a Checker.
type Options struct {
	// Roots verify TLS certificates (nil: the system's).
	Roots *x509.CertPool
	// Resolve maps host:port to the address to dial instead, as curl's
	// --resolve does: to check a server before its DNS is in place, and
	// for tests on loopback.
	Resolve map[string]string
	// LookupSRV looks up SRV records (nil: the system resolver).
	LookupSRV func(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
	// Timeout bounds each request (0: 10 s).
	Timeout time.Duration
}

// Checker runs the checks.
type Checker struct {
	o      Options
	client *http.Client
}

// New makes a Checker.
func New(o Options) *Checker {
	if o.LookupSRV == nil {
		o.LookupSRV = net.DefaultResolver.LookupSRV
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	c := &Checker{o: o}
	c.client = &http.Client{Timeout: o.Timeout, Transport: c.transport("")}
	return c
}

// transport dials through the Resolve map, verifying certificates for
// tlsName ("" : the URL's host).
func (c *Checker) transport(tlsName string) *http.Transport {
	d := &net.Dialer{Timeout: c.o.Timeout}
	return &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if to, ok := c.o.Resolve[addr]; ok {
				addr = to
			}
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig:     &tls.Config{RootCAs: c.o.Roots, ServerName: tlsName, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: c.o.Timeout,
		DisableKeepAlives:   true,
	}
}

// destination is where federation requests for a name go.
type destination struct {
	addr, host, tlsName string
}

// report collects findings.
type report struct{ findings []Finding }

func (r *report) add(check string, level Level, fix, format string, args ...any) {
	r.findings = append(r.findings, Finding{Check: check, Level: level, Detail: fmt.Sprintf(format, args...), Fix: fix})
}

// Server checks serverName as other servers and clients see it.
// expectKey, when set, is the key this server signs with ("ed25519:id"
// and its public key): the server answering must be this one.
func (c *Checker) Server(ctx context.Context, serverName string, expectKeyID string, expectKey ed25519.PublicKey) []Finding {
	r := &report{}
	if err := config.ValidateServerName(serverName); err != nil {
		r.add("server name", Error, "server_name must be a hostname or IP literal, with an optional port", "%q is not a server name: %v", serverName, err)
		return r.findings
	}
	r.add("server name", OK, "", "%s", serverName)
	dests := c.resolve(ctx, r, serverName)
	var used *destination
	for i := range dests {
		d := dests[i]
		if c.checkTLS(ctx, r, d) {
			used = &d
			break
		}
	}
	if used == nil {
		return r.findings
	}
	c.checkVersion(ctx, r, *used)
	c.checkKeys(ctx, r, *used, serverName, expectKeyID, expectKey)
	c.checkClient(ctx, r, serverName)
	return r.findings
}

// resolve follows the spec's "Resolving server names" and reports each
// step.
func (c *Checker) resolve(ctx context.Context, r *report, serverName string) []destination {
	host, port := splitHostPort(serverName)
	if net.ParseIP(strings.Trim(host, "[]")) != nil || port != "" {
		d := direct(serverName, host, port)
		r.add("delegation", OK, "", "%s names its host and port, so no delegation is looked up; federation goes to %s", serverName, d.addr)
		return []destination{d}
	}
	delegated, err := c.wellKnownServer(ctx, host)
	switch {
	case err == nil:
		r.add("well-known server", OK, "", "https://%s/.well-known/matrix/server delegates to %s", host, delegated)
		dhost, dport := splitHostPort(delegated)
		if net.ParseIP(strings.Trim(dhost, "[]")) != nil || dport != "" {
			return []destination{direct(delegated, dhost, dport)}
		}
		return c.srv(ctx, r, delegated, dhost)
	case errors.Is(err, errNoDocument):
		r.add("well-known server", Warning,
			"serve {\"m.server\": \"matrix."+host+":443\"} at https://"+host+"/.well-known/matrix/server (well_known.server), or rely on an SRV record or port 8448",
			"https://%s/.well-known/matrix/server: %v; other servers fall back to SRV records and port 8448", host, err)
	default:
		r.add("well-known server", Error,
			"the document must be JSON with an \"m.server\" server name, served over HTTPS with a valid certificate",
			"https://%s/.well-known/matrix/server: %v", host, err)
	}
	return c.srv(ctx, r, serverName, host)
}

var errNoDocument = errors.New("no document")

func (c *Checker) wellKnownServer(ctx context.Context, host string) (string, error) {
	body, resp, err := c.get(ctx, "https://"+host+"/.well-known/matrix/server")
	if err != nil {
		var cert *tls.CertificateVerificationError
		if errors.As(err, &cert) {
			return "", fmt.Errorf("certificate: %v", cert.Err)
		}
		return "", fmt.Errorf("%w (%v)", errNoDocument, err)
	}
	if resp.StatusCode == http.StatusNotFound {
		return "", fmt.Errorf("%w (404)", errNoDocument)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	var doc struct {
		Server string `json:"m.server"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("not JSON: %v", err)
	}
	if err := config.ValidateServerName(doc.Server); err != nil {
		return "", fmt.Errorf("m.server %q: %v", doc.Server, err)
	}
	return doc.Server, nil
}

func (c *Checker) srv(ctx context.Context, r *report, hostHeader, host string) []destination {
	for _, service := range []string{"matrix-fed", "matrix"} {
		_, records, err := c.o.LookupSRV(ctx, service, "tcp", host)
		if err != nil || len(records) == 0 {
			continue
		}
		var out []destination
		var names []string
		for _, rec := range records {
			target := strings.TrimSuffix(rec.Target, ".")
			if target == "" {
				continue
			}
			a := net.JoinHostPort(target, strconv.Itoa(int(rec.Port)))
			out = append(out, destination{addr: a, host: hostHeader, tlsName: host})
			names = append(names, a)
		}
		if service == "matrix" {
			r.add("SRV", Warning, "rename the record to _matrix-fed._tcp."+host+": _matrix._tcp is deprecated (spec v1.8) and newer servers stop reading it",
				"_matrix._tcp.%s: %s", host, strings.Join(names, ", "))
		} else {
			r.add("SRV", OK, "", "_matrix-fed._tcp.%s: %s", host, strings.Join(names, ", "))
		}
		return out
	}
	r.add("SRV", OK, "", "no SRV record for %s; federation goes to port 8448", host)
	return []destination{{addr: net.JoinHostPort(host, "8448"), host: hostHeader, tlsName: host}}
}

func direct(hostHeader, host, port string) destination {
	if port == "" {
		port = "8448"
	}
	bare := strings.Trim(host, "[]")
	return destination{addr: net.JoinHostPort(bare, port), host: hostHeader, tlsName: bare}
}

func splitHostPort(name string) (host, port string) {
	if strings.HasPrefix(name, "[") {
		if i := strings.Index(name, "]"); i >= 0 {
			return name[:i+1], strings.TrimPrefix(name[i+1:], ":")
		}
		return name, ""
	}
	if i := strings.LastIndexByte(name, ':'); i >= 0 {
		return name[:i], name[i+1:]
	}
	return name, ""
}

// checkTLS connects and checks the certificate chain, its names and its
// expiry.
func (c *Checker) checkTLS(ctx context.Context, r *report, d destination) bool {
	dialAddr := d.addr
	if to, ok := c.o.Resolve[d.addr]; ok {
		dialAddr = to
	}
	dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: c.o.Timeout},
		Config: &tls.Config{RootCAs: c.o.Roots, ServerName: d.tlsName, MinVersion: tls.VersionTLS12}}
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	conn, err := dialer.DialContext(ctx, "tcp", dialAddr)
	if err != nil {
		var cert *tls.CertificateVerificationError
		var host x509.HostnameError
		var unknown x509.UnknownAuthorityError
		switch {
		case errors.As(err, &host):
			r.add("TLS certificate", Error, "get a certificate whose names include "+d.tlsName+" (acme.domain does this by itself)",
				"%s: the certificate is for %v, not %s", d.addr, host.Certificate.DNSNames, d.tlsName)
		case errors.As(err, &unknown), errors.As(err, &cert):
			r.add("TLS certificate", Error, "serve the full chain (fullchain.pem, not cert.pem) from a public CA; self-signed certificates are refused by other servers",
				"%s: the certificate chain does not verify: %v", d.addr, err)
		default:
			r.add("federation port", Error, "make "+d.addr+" reachable from the internet (firewall, port forwarding, listen.federation or a proxy on that port)",
				"cannot connect to %s: %v", d.addr, err)
		}
		return false
	}
	defer conn.Close()
	leaf := conn.(*tls.Conn).ConnectionState().PeerCertificates[0]
	left := time.Until(leaf.NotAfter)
	switch {
	case left < 7*24*time.Hour:
		r.add("TLS certificate", Warning, "renew the certificate (acme.domain renews it by itself)",
			"%s: valid for %s, until %s; expires in %s", d.addr, d.tlsName, leaf.NotAfter.UTC().Format(time.RFC3339), left.Round(time.Hour))
	default:
		r.add("TLS certificate", OK, "", "%s: valid for %s until %s", d.addr, d.tlsName, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return true
}

// fedGet is a GET to a federation destination, Host header and SNI as a
// homeserver sends them.
func (c *Checker) fedGet(ctx context.Context, d destination, path string) ([]byte, *http.Response, error) {
	cl := &http.Client{Timeout: c.o.Timeout, Transport: c.transport(d.tlsName)}
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+d.addr+path, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Host = d.host
	return do(cl, req)
}

func (c *Checker) get(ctx context.Context, u string) ([]byte, *http.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	return do(c.client, req)
}

func do(cl *http.Client, req *http.Request) ([]byte, *http.Response, error) {
	resp, err := cl.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return body, resp, err
}

func (c *Checker) checkVersion(ctx context.Context, r *report, d destination) {
	body, resp, err := c.fedGet(ctx, d, "/_matrix/federation/v1/version")
	if err != nil || resp.StatusCode != http.StatusOK {
		r.add("federation API", Error, "pass /_matrix/federation/ (and /_matrix/key/) to Myelin on "+d.addr,
			"GET /_matrix/federation/v1/version on %s: %v", d.addr, statusOr(resp, err))
		return
	}
	var v struct {
		Server struct {
			Name, Version string
		} `json:"server"`
	}
	if json.Unmarshal(body, &v) != nil || v.Server.Name == "" {
		r.add("federation API", Error, "the address answers, but not as a Matrix homeserver: is the proxy pointed at Myelin?",
			"GET /_matrix/federation/v1/version on %s: %.100q", d.addr, body)
		return
	}
	r.add("federation API", OK, "", "%s answers as %s %s", d.addr, v.Server.Name, v.Server.Version)
}

func statusOr(resp *http.Response, err error) string {
	if err != nil {
		return err.Error()
	}
	return "status " + strconv.Itoa(resp.StatusCode)
}

// checkKeys fetches the server's keys and checks that they are its own,
// self-signed and current.
func (c *Checker) checkKeys(ctx context.Context, r *report, d destination, serverName, expectKeyID string, expectKey ed25519.PublicKey) {
	body, resp, err := c.fedGet(ctx, d, "/_matrix/key/v2/server")
	if err != nil || resp.StatusCode != http.StatusOK {
		r.add("signing keys", Error, "pass /_matrix/key/ to Myelin", "GET /_matrix/key/v2/server on %s: %v", d.addr, statusOr(resp, err))
		return
	}
	problem := verifyKeys(body, serverName, expectKeyID, expectKey)
	if problem != "" {
		r.add("signing keys", Error, "the keys must be this server's own and signed by it: is the proxy pointed at the right server, and server_name right?", "%s", problem)
		return
	}
	r.add("signing keys", OK, "", "/_matrix/key/v2/server is signed by %s and current", serverName)
}

// verifyKeys checks a /_matrix/key/v2/server answer: for serverName,
// valid for a while yet, signed by one of its own verify keys, and
// holding expectKeyID's key when one is given. It returns what is wrong.
func verifyKeys(body []byte, serverName, expectKeyID string, expectKey ed25519.PublicKey) string {
	var keys struct {
		ServerName   string `json:"server_name"`
		ValidUntilTS int64  `json:"valid_until_ts"`
		VerifyKeys   map[string]struct {
			Key string `json:"key"`
		} `json:"verify_keys"`
		Signatures map[string]map[string]string `json:"signatures"`
	}
	if err := json.Unmarshal(body, &keys); err != nil {
		return fmt.Sprintf("the key document is not JSON: %v", err)
	}
	if keys.ServerName != serverName {
		return fmt.Sprintf("the keys are for %q, not %q", keys.ServerName, serverName)
	}
	if time.UnixMilli(keys.ValidUntilTS).Before(time.Now()) {
		return fmt.Sprintf("the keys expired at %s", time.UnixMilli(keys.ValidUntilTS).UTC().Format(time.RFC3339))
	}
	if expectKeyID != "" {
		k, ok := keys.VerifyKeys[expectKeyID]
		raw, err := base64.RawStdEncoding.DecodeString(k.Key)
		if !ok || err != nil || !ed25519.PublicKey(raw).Equal(expectKey) {
			return fmt.Sprintf("the server answering does not publish this server's key %s: another server answers for %s", expectKeyID, serverName)
		}
	}
	signed := 0
	for id := range keys.Signatures[serverName] {
		k, ok := keys.VerifyKeys[id]
		if !ok {
			continue
		}
		pub, err := base64.RawStdEncoding.DecodeString(k.Key)
		if err != nil || len(pub) != ed25519.PublicKeySize {
			return fmt.Sprintf("verify key %s is not an ed25519 key", id)
		}
		if err := gomatrixserverlib.VerifyJSON(serverName, gomatrixserverlib.KeyID(id), ed25519.PublicKey(pub), body); err != nil {
			return fmt.Sprintf("the signature %s does not verify: %v", id, err)
		}
		signed++
	}
	if signed == 0 {
		return "the key document is not signed by any of its own verify keys"
	}
	return ""
}

// checkClient checks the client discovery document, the base URL it
// names, and the CORS header web clients need on both.
func (c *Checker) checkClient(ctx context.Context, r *report, serverName string) {
	host, _ := splitHostPort(serverName)
	u := "https://" + host + "/.well-known/matrix/client"
	body, resp, err := c.get(ctx, u)
	if err != nil || resp.StatusCode != http.StatusOK {
		r.add("client well-known", Warning, "serve "+u+" (well_known.client_base_url) so that clients find the server from the user ID",
			"%s: %v", u, statusOr(resp, err))
		return
	}
	var doc struct {
		Homeserver struct {
			BaseURL string `json:"base_url"`
		} `json:"m.homeserver"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || doc.Homeserver.BaseURL == "" {
		r.add("client well-known", Error, "the document must be JSON with m.homeserver.base_url", "%s: %.100q", u, body)
		return
	}
	if resp.Header.Get("Access-Control-Allow-Origin") == "" {
		r.add("CORS", Error, "answer Access-Control-Allow-Origin: * on /.well-known/matrix/client (http.cors_allowed_origin; a proxy must not strip it): web clients cannot read the document",
			"%s has no Access-Control-Allow-Origin header", u)
	}
	base, err := url.Parse(doc.Homeserver.BaseURL)
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") {
		r.add("client well-known", Error, "m.homeserver.base_url must be an https:// URL", "base_url %q", doc.Homeserver.BaseURL)
		return
	}
	if base.Scheme != "https" {
		r.add("client well-known", Warning, "clients on the internet need https://", "base_url %s is not HTTPS", doc.Homeserver.BaseURL)
	}
	vu := strings.TrimRight(doc.Homeserver.BaseURL, "/") + "/_matrix/client/versions"
	body, resp, err = c.get(ctx, vu)
	if err != nil || resp.StatusCode != http.StatusOK {
		r.add("client API", Error, "base_url must reach Myelin's client API", "%s: %v", vu, statusOr(resp, err))
		return
	}
	var versions struct {
		Versions []string `json:"versions"`
	}
	if json.Unmarshal(body, &versions) != nil || len(versions.Versions) == 0 {
		r.add("client API", Error, "base_url answers, but not as a Matrix homeserver", "%s: %.100q", vu, body)
		return
	}
	if resp.Header.Get("Access-Control-Allow-Origin") == "" {
		r.add("CORS", Error, "answer Access-Control-Allow-Origin: * on /_matrix (a proxy must not strip it): web clients such as Element Web cannot talk to the server",
			"%s has no Access-Control-Allow-Origin header", vu)
		return
	}
	r.add("client API", OK, "", "%s → %s answers (spec versions up to %s), with CORS", u, doc.Homeserver.BaseURL, versions.Versions[len(versions.Versions)-1])
}

// Reachable checks that other, a server seen from here, can in turn reach
// serverName: it asks other's key notary for serverName's keys, which
// other must fetch from serverName itself.
func (c *Checker) Reachable(ctx context.Context, serverName, other string) []Finding {
	r := &report{}
	dests := c.resolve(ctx, &report{}, other)
	for _, d := range dests {
		body, resp, err := c.fedGet(ctx, d, "/_matrix/key/v2/query/"+url.PathEscape(serverName))
		if err != nil || resp.StatusCode != http.StatusOK {
			r.add("reach "+other, Error, "", "asking %s (%s) for %s's keys: %v", other, d.addr, serverName, statusOr(resp, err))
			continue
		}
		var answer struct {
			ServerKeys []json.RawMessage `json:"server_keys"`
		}
		if err := json.Unmarshal(body, &answer); err != nil {
			r.add("reach "+other, Error, "", "%s's notary answer is not JSON: %v", other, err)
			return r.findings
		}
		for _, k := range answer.ServerKeys {
			var head struct {
				ServerName string `json:"server_name"`
			}
			if json.Unmarshal(k, &head) == nil && head.ServerName == serverName && verifyKeys(k, serverName, "", nil) == "" {
				// A notary answers from its cache while the keys it holds
				// are valid (a day for Myelin's, Synapse's alike), and the
				// protocol has no way to make it fetch anew: this proves
				// that other reached this server once, lately; a break
				// since then shows when the cached keys expire.
				r.add("reach "+other, OK, "", "%s holds %s's keys, fetched from here (its cached copy, if it had one, up to a day old): the two servers can reach each other", other, serverName)
				return r.findings
			}
		}
		r.add("reach "+other, Error, "check the findings above: "+other+" resolves "+serverName+" as the spec says, so the delegation, certificate or port it reaches is wrong, or a firewall refuses "+other,
			"%s could not fetch %s's keys", other, serverName)
		return r.findings
	}
	if len(r.findings) == 0 {
		r.add("reach "+other, Error, "", "%s cannot be reached from here", other)
	}
	return r.findings
}

// Failed reports whether any finding is an error.
func Failed(fs []Finding) bool {
	for _, f := range fs {
		if f.Level == Error {
			return true
		}
	}
	return false
}
