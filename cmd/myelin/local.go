package main

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/myelin-chat/myelin/internal/config"
)

// localClientURL is the base URL of this machine's client listener as
// the configuration names it: https when it serves TLS, and a wildcard
// or empty host ("[::]:443", ":8008") dialled on loopback.
func localClientURL(cfg *config.Config) string {
	scheme := "http"
	if cfg.Listen.ClientTLS && cfg.TLSEnabled() {
		scheme = "https"
	}
	host, port, err := net.SplitHostPort(cfg.Listen.Client)
	if err != nil {
		return scheme + "://" + cfg.Listen.Client
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// localClient talks to the client listener at base. A certificate names
// the server's domain, not the listener's address, so on loopback it is
// not verified (the connection never leaves the machine), and neither
// when probe is set (a probe sends nothing secret); elsewhere it is.
func localClient(base string, timeout time.Duration, probe bool) *http.Client {
	insecure := probe
	if u, err := url.Parse(base); err == nil {
		host := u.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
			insecure = true
		}
	}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: insecure, MinVersion: tls.VersionTLS12},
	}}
}
