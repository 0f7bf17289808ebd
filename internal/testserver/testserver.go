// Package testserver starts real Myelin servers on loopback for
// end-to-end tests and hands out mautrix-go clients to drive them.
package testserver

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/server"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// Server is a running test homeserver.
type Server struct {
	*server.Server
	Config *config.Config
	// URL is the client-server API's base URL.
	URL string
	t   testing.TB
}

// Config is the configuration tests start from: open registration, no
// rate limits, cheap password hashing, random loopback ports, and a data
// directory of the test's own.
func Config(t testing.TB, dbURL string) *config.Config {
	cfg := config.Default()
	cfg.ServerName = "hs1.test"
	cfg.DataDir = t.TempDir()
	cfg.Database.URL = dbURL
	// A test's database need not survive the machine losing power:
	// SQLite's NORMAL fsyncs only at checkpoints, and loses only the last
	// commits, only when the machine (not the process) stops, so no test
	// can tell; the end-to-end packages commit thousands of times on a
	// shared disk. Benchmarks put the default back (internal/bench).
	// PostgreSQL keeps synchronous_commit on. With it off, writes got
	// fast enough to expose two server races (push judged events against
	// the room's current members; an appservice started at the stream
	// position of its worker's first run); both are fixed, and the test
	// runs with it off are the way to find the next ones, but CI keeps
	// the deployed setting.
	cfg.Database.SQLiteSynchronous = "normal"
	cfg.Listen.Client = "127.0.0.1:0"
	cfg.Registration.Open = true
	cfg.RateLimit.Enabled = false
	cfg.Auth.BcryptCost = 4
	// A lone test server talks to no other: no DNS lookups of made-up
	// names. StartNetwork turns federation on.
	cfg.Federation.Enabled = false
	// Test networks, fake push gateways and previewed sites listen on
	// loopback, which the outbound policy refuses by default; tests of
	// that refusal set Outbound.Allow back to nil.
	cfg.Outbound.Allow = LoopbackAllow()
	return cfg
}

// LoopbackAllow is the outbound allow list of test servers: every
// loopback address (networks use 127.0.0.11 and up), IPv4 and IPv6.
func LoopbackAllow() []string { return []string{"127.0.0.0/8", "::1/128"} }

// Start runs a server with Config, changed by mutate (which may be nil).
func Start(t testing.TB, dbURL string, mutate func(*config.Config)) *Server {
	t.Helper()
	cfg := Config(t, dbURL)
	if mutate != nil {
		mutate(cfg)
	}
	return StartConfig(t, cfg)
}

// StartConfig runs a server with exactly cfg and stops it when the test ends.
func StartConfig(t testing.TB, cfg *config.Config) *Server {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("testserver: %v", err)
	}
	s, err := server.New(context.Background(), cfg, logger())
	if err != nil {
		t.Fatalf("testserver: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("testserver: %v", err)
	}
	ts := &Server{Server: s, Config: cfg, URL: "http://" + s.Addr("client"), t: t}
	t.Cleanup(func() { ts.Stop() })
	return ts
}

// Stop shuts the server down (a second call does nothing).
func (s *Server) Stop() {
	if s.Server == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Server.Shutdown(ctx); err != nil {
		s.t.Errorf("testserver: shutdown: %v", err)
	}
	s.Server = nil
}

// Restart stops the server and starts a new one with the same Config,
// so on the same data directory and database. Listeners on port 0 get
// new ports: URL changes, and clients made before must be pointed at it
// (see Repoint).
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	srv, err := server.New(context.Background(), s.Config, logger())
	if err != nil {
		s.t.Fatalf("testserver: restart: %v", err)
	}
	if err := srv.Start(); err != nil {
		s.t.Fatalf("testserver: restart: %v", err)
	}
	s.Server = srv
	s.URL = "http://" + srv.Addr("client")
}

// Repoint makes a client made for this server use its current URL (after
// a Restart).
func (s *Server) Repoint(c *mautrix.Client) {
	s.t.Helper()
	u, err := url.Parse(s.URL)
	if err != nil {
		s.t.Fatalf("testserver: %v", err)
	}
	c.HomeserverURL = u
}

// logger is silent unless MYELIN_TEST_LOG is set.
func logger() *slog.Logger {
	if os.Getenv("MYELIN_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// Client is an unauthenticated mautrix client for the server.
func (s *Server) Client() *mautrix.Client {
	s.t.Helper()
	c, err := mautrix.NewClient(s.URL, "", "")
	if err != nil {
		s.t.Fatalf("testserver: %v", err)
	}
	return c
}

// Register creates an account through /register (m.login.dummy) and
// returns a client logged in as it.
func (s *Server) Register(localpart, password string) *mautrix.Client {
	s.t.Helper()
	c := s.Client()
	resp, err := c.RegisterDummy(context.Background(), &mautrix.ReqRegister[any]{Username: localpart, Password: password})
	if err != nil {
		s.t.Fatalf("testserver: register %s: %v", localpart, err)
	}
	c.SetCredentials(resp.UserID, resp.AccessToken)
	c.DeviceID = resp.DeviceID
	return c
}

// Login logs an existing account in on a new device and returns a
// client for it.
func (s *Server) Login(localpart, password string) *mautrix.Client {
	s.t.Helper()
	c := s.Client()
	_, err := c.Login(context.Background(), &mautrix.ReqLogin{
		Type:             mautrix.AuthTypePassword,
		Identifier:       mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: localpart},
		Password:         password,
		StoreCredentials: true,
	})
	if err != nil {
		s.t.Fatalf("testserver: login %s: %v", localpart, err)
	}
	return c
}

// RegisterAdmin creates a server admin through shared-secret
// registration (the config must set registration.shared_secret), with
// the MAC computed here independently of the server's code, and returns
// a client logged in as it.
func (s *Server) RegisterAdmin(localpart, password string) *mautrix.Client {
	s.t.Helper()
	secret := s.Config.Registration.SharedSecret
	if secret == "" {
		s.t.Fatalf("testserver: register admin %s: no shared secret configured", localpart)
	}
	const path = "/_synapse/admin/v1/register"
	status, body := s.Do(s.t, http.MethodGet, path, "", nil)
	WantStatus(s.t, "testserver: shared-secret nonce", status, body, http.StatusOK)
	nonce, _ := body["nonce"].(string)
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(nonce + "\x00" + localpart + "\x00" + password + "\x00" + "admin"))
	status, body = s.Do(s.t, http.MethodPost, path, "", map[string]any{
		"nonce": nonce, "username": localpart, "password": password, "admin": true,
		"mac": hex.EncodeToString(mac.Sum(nil)),
	})
	WantStatus(s.t, "testserver: shared-secret register "+localpart, status, body, http.StatusOK)
	userID, _ := body["user_id"].(string)
	token, _ := body["access_token"].(string)
	if userID == "" || token == "" {
		s.t.Fatalf("testserver: shared-secret register %s: no user_id or access_token in %v", localpart, body)
	}
	c := s.Client()
	c.SetCredentials(id.UserID(userID), token)
	if device, _ := body["device_id"].(string); device != "" {
		c.DeviceID = id.DeviceID(device)
	}
	return c
}

// UserID is the full user ID of a localpart on this server.
func (s *Server) UserID(localpart string) string {
	return fmt.Sprintf("@%s:%s", localpart, s.Config.ServerName)
}

// EachEngine runs fn against a fresh server per database engine
// (SQLite always, PostgreSQL when MYELIN_TEST_POSTGRES is set).
func EachEngine(t *testing.T, mutate func(*config.Config), fn func(t *testing.T, s *Server)) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		fn(t, Start(t, dbURL, mutate))
	})
}
