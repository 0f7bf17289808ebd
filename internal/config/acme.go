package config

import (
	"fmt"
	"net/url"
)

// LetsEncrypt is Let's Encrypt's production ACME directory, the default.
const LetsEncrypt = "https://acme-v02.api.letsencrypt.org/directory"

// ACME makes Myelin obtain and renew its TLS certificate itself
// (golang.org/x/crypto/acme/autocert): with a domain set, the TLS
// listeners (listen.federation, and listen.client with client_tls) serve
// the certificate issued for it, and the TLS-ALPN-01 challenge is answered
// on them; http_listen also answers HTTP-01 (and redirects everything
// else to https). Certificates are kept in <data_dir>/acme.
type ACME struct {
	Domain       string `yaml:"domain"`
	Email        string `yaml:"email"`
	DirectoryURL string `yaml:"directory_url"`
	// CAFile holds extra roots for the ACME server's own certificate (a
	// private CA, or a test server).
	CAFile     string `yaml:"ca_file"`
	HTTPListen string `yaml:"http_listen"`
}

func (c *Config) applyACMEEnv(env func(string) (string, bool)) {
	for name, dst := range map[string]*string{
		"MYELIN_ACME_DOMAIN":        &c.ACME.Domain,
		"MYELIN_ACME_EMAIL":         &c.ACME.Email,
		"MYELIN_ACME_DIRECTORY_URL": &c.ACME.DirectoryURL,
		"MYELIN_ACME_CA_FILE":       &c.ACME.CAFile,
		"MYELIN_ACME_HTTP_LISTEN":   &c.ACME.HTTPListen,
	} {
		if v, ok := env(name); ok {
			*dst = v
		}
	}
}

func (c *Config) validateACME() error {
	a := c.ACME
	if a.Domain == "" {
		if a.HTTPListen != "" {
			return fmt.Errorf("config: acme.http_listen: needs acme.domain")
		}
		return nil
	}
	if err := ValidateServerName(a.Domain); err != nil || a.Domain != hostOnly(a.Domain) {
		return fmt.Errorf("config: acme.domain: %q is not a host name", a.Domain)
	}
	if c.Listen.TLSCert != "" {
		return fmt.Errorf("config: acme.domain: set either acme.domain or listen.tls_cert, not both")
	}
	if c.Listen.Federation == "" && !c.Listen.ClientTLS {
		return fmt.Errorf("config: acme.domain: no listener serves TLS; set listen.client_tls (both APIs on one listener) or listen.federation")
	}
	u, err := url.Parse(a.DirectoryURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("config: acme.directory_url: want an https:// URL, got %q", a.DirectoryURL)
	}
	return nil
}

// hostOnly is name without a port.
func hostOnly(name string) string {
	for i := len(name) - 1; i >= 0; i-- {
		switch name[i] {
		case ':':
			return name[:i]
		case ']':
			return name
		}
	}
	return name
}

// TLSEnabled reports whether the listeners have a certificate, from
// files or from ACME.
func (c *Config) TLSEnabled() bool { return c.Listen.TLSCert != "" || c.ACME.Domain != "" }
