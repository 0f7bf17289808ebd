package remote

import (
	"crypto/x509"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/outbound"
	"github.com/myelin-chat/myelin/internal/signing"
)

// ClientOptions configure outgoing federation requests.
type ClientOptions struct {
	ServerName string
	Key        signing.Key
	// Roots are the certificate authorities trusted for other servers.
	Roots *x509.CertPool
	// Addresses map server names to host:port, skipping discovery.
	Addresses map[string]string
	Timeout   time.Duration
	UserAgent string
	// Policy decides which addresses may be connected to (nil:
	// outbound.Default()).
	Policy *outbound.Policy
}

// NewClient makes the federation client: gomatrixserverlib's request
// signing and response parsing over this package's server discovery and
// TLS verification.
func NewClient(o ClientOptions) fclient.FederationClient {
	tr := NewTransport(NewResolver(o.Addresses, o.Roots, o.Policy), o.Roots, o.Policy)
	return fclient.NewFederationClient(
		[]*fclient.SigningIdentity{{
			ServerName: spec.ServerName(o.ServerName), KeyID: gomatrixserverlib.KeyID(o.Key.ID), PrivateKey: o.Key.Private,
		}},
		fclient.WithTransport(tr), fclient.WithTimeout(o.Timeout), fclient.WithUserAgent(o.UserAgent),
	)
}
