package server

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/myelin-chat/myelin/internal/federation/remote"
)

// tlsConfig is the TLS configuration of the TLS listeners: the
// certificate files, or certificates obtained and renewed through ACME.
func (s *Server) tlsConfig() (*tls.Config, error) {
	if s.cfg.ACME.Domain == "" {
		cert, err := tls.LoadX509KeyPair(s.cfg.Listen.TLSCert, s.cfg.Listen.TLSKey)
		if err != nil {
			return nil, err
		}
		return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
	}
	m, err := s.acmeManager()
	if err != nil {
		return nil, err
	}
	tc := m.TLSConfig()
	// HTTP/1.1 only, as with certificate files (the listeners serve
	// through http.Server.Serve), plus the TLS-ALPN-01 challenge protocol.
	tc.NextProtos = []string{"http/1.1", acme.ALPNProto}
	tc.MinVersion = tls.VersionTLS12
	return tc, nil
}

// acmeManager is made once: both TLS listeners and the HTTP-01 listener
// share its certificates and its renewal.
func (s *Server) acmeManager() (*autocert.Manager, error) {
	if s.acme != nil {
		return s.acme, nil
	}
	a := s.cfg.ACME
	roots, err := remote.CertPool(a.CAFile)
	if err != nil {
		return nil, err
	}
	only := autocert.HostWhitelist(a.Domain)
	s.acmeLife = newACMELifetime(&http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}})
	s.acme = &autocert.Manager{
		Prompt: autocert.AcceptTOS,
		Cache:  s.acmeLife.cache(autocert.DirCache(filepath.Join(s.cfg.DataDir, "acme"))),
		// The HTTP-01 handler checks the Host header as it came, which
		// names a port when the challenge is not on 80 (or a client adds
		// ":80"); the domain is what matters.
		HostPolicy: func(ctx context.Context, host string) error {
			if h, _, err := net.SplitHostPort(host); err == nil {
				host = h
			}
			return only(ctx, host)
		},
		Email: a.Email,
		Client: &acme.Client{DirectoryURL: a.DirectoryURL, HTTPClient: &http.Client{
			Timeout:   time.Minute,
			Transport: s.acmeLife.roundTripper(),
		}},
	}
	return s.acme, nil
}
