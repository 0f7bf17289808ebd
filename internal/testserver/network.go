package testserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/signing"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// Network is a set of Myelin servers federating over loopback: each has
// its own server name (hs1.test, hs2.test, ...), database, loopback
// address (127.0.0.11, .12, ...) and a TLS certificate from a test CA
// that every server of the network trusts; the configuration maps each
// name to its address, as a closed deployment would. A network may also
// hold hosts that are not Myelin (AddHost: a scripted peer of a test).
type Network struct {
	Servers []*Server
	ca      *testCA
	// addrs maps every name of the network, servers and hosts, to its
	// host:port.
	addrs map[string]string
	hosts int
}

// Host is a member of a network that is not a Myelin server: a name the
// servers reach at Addr, with a certificate of the network's CA.
type Host struct {
	Name, Addr        string
	CertFile, KeyFile string
}

// StartNetwork starts n federating servers on the database engine
// (testdb.Engines), each changed by mutate (which may be nil; it gets the
// server's index).
func StartNetwork(t testing.TB, engine string, n int, mutate func(i int, c *config.Config)) *Network {
	t.Helper()
	net := NewNetwork(t)
	net.Start(t, engine, n, mutate)
	return net
}

// NewNetwork prepares a network without servers: its CA, to which hosts
// are added (AddHost) before Start starts the Myelin servers.
func NewNetwork(t testing.TB) *Network {
	t.Helper()
	return &Network{ca: newTestCA(t), addrs: map[string]string{}}
}

// AddHost reserves a name, a loopback address (127.0.0.101 and up) and a
// certificate for a server that is not Myelin; the servers Start starts
// afterwards reach it there.
func (n *Network) AddHost(t testing.TB, name string) Host {
	t.Helper()
	if len(n.Servers) > 0 {
		t.Fatal("testserver: AddHost after Start: the servers would not know the host")
	}
	n.hosts++
	addr := freeAddr(t, fmt.Sprintf("127.0.0.%d", 100+n.hosts))
	n.addrs[name] = addr
	cert, key := n.ca.issue(t, name)
	return Host{Name: name, Addr: addr, CertFile: cert, KeyFile: key}
}

// Start starts count federating Myelin servers on the database engine,
// each changed by mutate (which may be nil; it gets the server's index).
func (n *Network) Start(t testing.TB, engine string, count int, mutate func(i int, c *config.Config)) {
	t.Helper()
	names := make([]string, count)
	for i := range count {
		names[i] = fmt.Sprintf("hs%d.test", i+1)
		n.addrs[names[i]] = freeAddr(t, fmt.Sprintf("127.0.0.%d", 11+i))
	}
	for i := range count {
		cfg := Config(t, testdb.NewURL(t, engine))
		cfg.ServerName = names[i]
		cfg.Federation.Enabled = true
		cfg.Listen.Federation = n.addrs[names[i]]
		cfg.Listen.TLSCert, cfg.Listen.TLSKey = n.ca.issue(t, names[i])
		cfg.Federation.CAFile = n.ca.file
		cfg.Federation.Addresses = map[string]string{}
		for k, v := range n.addrs {
			cfg.Federation.Addresses[k] = v
		}
		// Failed deliveries are retried within the test's patience.
		cfg.Federation.MaxRetryInterval = 2 * time.Second
		cfg.Federation.RequestTimeout = 10 * time.Second
		if mutate != nil {
			mutate(i, cfg)
		}
		n.Servers = append(n.Servers, StartConfig(t, cfg))
	}
}

// HTTPClient is an HTTPS client that reaches the network's names at
// their addresses and trusts its CA: how a host talks to the servers.
func (n *Network) HTTPClient() *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(n.ca.cert)
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			a, ok := n.addrs[host]
			if !ok {
				return nil, fmt.Errorf("testserver: %s is not in the network", host)
			}
			return dialer.DialContext(ctx, network, a)
		},
	}}
}

// EachEngineNetwork runs fn per database engine with a fresh network of
// n servers.
func EachEngineNetwork(t *testing.T, n int, mutate func(i int, c *config.Config), fn func(t *testing.T, net *Network)) {
	for _, engine := range testdb.Engines() {
		t.Run(engine, func(t *testing.T) {
			fn(t, StartNetwork(t, engine, n, mutate))
		})
	}
}

// freeAddr finds a free port on a loopback address. The port is
// reserved for the test's lifetime by nothing but luck, which on a
// loopback address of its own is enough; a fixed port lets a server
// restart where the others expect it.
func freeAddr(t testing.TB, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatalf("testserver: %s: %v", ip, err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string
	dir  string
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Myelin test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	dir := t.TempDir()
	file := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, file: file, dir: dir}
}

// issue writes a certificate for a server name signed by the CA and
// returns the certificate and key files.
func (ca *testCA) issue(t testing.TB, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{name},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(ca.dir, name+".crt"), filepath.Join(ca.dir, name+".key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// SignedRequest sends a server-server request to server to, signed
// (X-Matrix) as server from with its signing key, and returns the
// status and the JSON body (nil when it is not a JSON object).
func (n *Network) SignedRequest(t testing.TB, from, to *Server, method, path string, body any) (int, map[string]any) {
	t.Helper()
	raw, err := os.ReadFile(from.Config.SigningKeyPath())
	if err != nil {
		t.Fatal(err)
	}
	key, err := signing.Parse(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	return n.RequestSignedWith(t, from.Config.ServerName, key, to, method, path, body)
}

// RequestSignedWith sends a server-server request to a server signed as
// origin with key, which need not be origin's real key (forgery tests).
func (n *Network) RequestSignedWith(t testing.TB, origin string, key signing.Key, to *Server, method, path string, body any) (int, map[string]any) {
	t.Helper()
	req := fclient.NewFederationRequest(method, spec.ServerName(origin), spec.ServerName(to.Config.ServerName), path)
	if body != nil {
		if err := req.SetContent(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := req.Sign(spec.ServerName(origin), gomatrixserverlib.KeyID(key.ID), key.Private); err != nil {
		t.Fatal(err)
	}
	hreq, err := req.HTTPRequest()
	if err != nil {
		t.Fatal(err)
	}
	hreq.URL.Scheme, hreq.URL.Host = "https", to.Config.Listen.Federation
	hreq.Host = to.Config.ServerName
	pool := x509.NewCertPool()
	pool.AddCert(n.ca.cert)
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: to.Config.ServerName},
	}}
	resp, err := client.Do(hreq)
	if err != nil {
		t.Fatalf("testserver: %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	data, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(data, &out)
	return resp.StatusCode, out
}
