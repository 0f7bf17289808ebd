package testserver

import (
	"crypto/x509"
	"testing"
)

// CA is a test certificate authority, like the one every server of a
// Network trusts, for tests that set up TLS listeners themselves.
type CA struct{ ca *testCA }

// NewCA makes a CA whose certificate lives in a temporary file.
func NewCA(t testing.TB) CA { return CA{newTestCA(t)} }

// Issue writes a certificate for name signed by the CA, and its key.
func (c CA) Issue(t testing.TB, name string) (certFile, keyFile string) { return c.ca.issue(t, name) }

// File is the CA certificate's PEM file (config's federation.ca_file).
func (c CA) File() string { return c.ca.file }

// Pool is a pool that trusts the CA alone.
func (c CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.ca.cert)
	return p
}
