package main_test

// These tests build the real myelin binary once and drive it as an
// operator would: environment variables, flags, signals and HTTP.

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/server"
	"github.com/myelin-chat/myelin/internal/signing"
	"github.com/myelin-chat/myelin/internal/testdb"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// binary is the myelin executable TestMain builds.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "myelin-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "myelin")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building myelin:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// childEnv is the environment of a myelin process: this process's,
// without any MYELIN_* variable, plus env.
func childEnv(env map[string]string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MYELIN_") {
			out = append(out, kv)
		}
	}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// syncBuffer is a bytes.Buffer safe to read while a process writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

type result struct {
	stdout, stderr string
	code           int
}

// run runs myelin to completion (bounded to 20 s) in a fresh working
// directory.
func run(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = childEnv(env)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("myelin %s did not finish in 20s; stderr:\n%s", strings.Join(args, " "), stderr.String())
	}
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	default:
		t.Fatalf("myelin %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// proc is a running `myelin serve`.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
	err    error // cmd.Wait's result, once done is closed
	// URL is the client API's base URL.
	URL string
}

// freeAddr is the listen address of a test server's listener: port 0,
// so that the server binds a port no one else holds (a port found free
// and released could be taken by a parallel test before the child binds
// it); the child's "listening" log line tells which (proc.addr).
func freeAddr(*testing.T) string { return "127.0.0.1:0" }

// addr returns the address a listener of the child bound, from its log.
func (p *proc) addr(listener string) string {
	p.t.Helper()
	re := regexp.MustCompile(`listener=` + listener + ` addr=(\S+)`)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(p.stderr.String()); m != nil {
			return m[1]
		}
		select {
		case <-p.done:
			p.t.Fatalf("myelin serve exited before listening (%v):\n%s", p.err, p.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	p.t.Fatalf("myelin serve never logged its %s listener:\n%s", listener, p.stderr.String())
	return ""
}

// serveEnv is the environment of a quick test server: a data directory,
// a free client port, cheap password hashing, and loopback allowed for
// outbound requests (as every test harness does). Callers add to it.
func serveEnv(t *testing.T) map[string]string {
	return map[string]string{
		"MYELIN_DATA_DIR":       t.TempDir(),
		"MYELIN_CLIENT_LISTEN":  freeAddr(t),
		"MYELIN_SERVER_NAME":    "bin.test",
		"MYELIN_BCRYPT_COST":    "4",
		"MYELIN_OUTBOUND_ALLOW": "127.0.0.0/8,::1/128",
	}
}

// serve starts `myelin serve` with env and waits until it answers
// /_matrix/client/versions. The process is killed when the test ends.
func serve(t *testing.T, env map[string]string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"serve"}, args...)...)
	cmd.Dir = t.TempDir()
	cmd.Env = childEnv(env)
	p := &proc{t: t, cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stderr, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("myelin serve output:\n%s", p.stderr.String())
		}
	})
	p.URL = "http://" + p.addr("client")
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-p.done:
			t.Fatalf("myelin serve exited early (%v):\n%s", p.err, p.stderr.String())
		default:
		}
		resp, err := http.Get(p.URL + "/_matrix/client/versions")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("myelin serve did not answer /versions within 10s (last error %v):\n%s", err, p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM and requires a clean exit within 5 s.
func (p *proc) stop() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.t.Fatalf("myelin serve did not exit within 5s of SIGTERM:\n%s", p.stderr.String())
	}
	if p.err != nil {
		p.t.Fatalf("myelin serve exited with %v after SIGTERM:\n%s", p.err, p.stderr.String())
	}
}

// register creates an account through the m.login.dummy flow with raw
// HTTP and returns its access token.
func register(t *testing.T, base, user, password string) string {
	t.Helper()
	url := base + "/_matrix/client/v3/register"
	code, body := testserver.Do(t, nil, "POST", url, "", map[string]any{"username": user, "password": password})
	if code != http.StatusUnauthorized {
		t.Fatalf("register without auth: %d %v, want 401", code, body)
	}
	session, _ := body["session"].(string)
	if session == "" {
		t.Fatalf("register 401 has no session: %v", body)
	}
	if !strings.Contains(fmt.Sprint(body["flows"]), "m.login.dummy") {
		t.Fatalf("register flows %v do not offer m.login.dummy", body["flows"])
	}
	code, body = testserver.Do(t, nil, "POST", url, "", map[string]any{
		"username": user, "password": password,
		"auth": map[string]any{"type": "m.login.dummy", "session": session},
	})
	if code != http.StatusOK {
		t.Fatalf("register with m.login.dummy: %d %v", code, body)
	}
	if want := "@" + user + ":bin.test"; body["user_id"] != want {
		t.Fatalf("register user_id = %v, want %s", body["user_id"], want)
	}
	token, _ := body["access_token"].(string)
	if token == "" {
		t.Fatalf("register returned no access_token: %v", body)
	}
	return token
}

// loginRaw posts a password login and returns the status and body.
func loginRaw(t *testing.T, base, user, password string) (int, map[string]any) {
	t.Helper()
	return testserver.Do(t, nil, "POST", base+"/_matrix/client/v3/login", "", map[string]any{
		"type":       "m.login.password",
		"identifier": map[string]any{"type": "m.id.user", "user": user},
		"password":   password,
	})
}

// login logs in, checks the token with whoami and returns it.
func login(t *testing.T, base, user, password string) string {
	t.Helper()
	code, body := loginRaw(t, base, user, password)
	if code != http.StatusOK {
		t.Fatalf("login %s: %d %v", user, code, body)
	}
	want := "@" + user + ":bin.test"
	if body["user_id"] != want {
		t.Fatalf("login user_id = %v, want %s", body["user_id"], want)
	}
	token, _ := body["access_token"].(string)
	code, who := testserver.Do(t, nil, "GET", base+"/_matrix/client/v3/account/whoami", token, nil)
	if code != http.StatusOK || who["user_id"] != want {
		t.Fatalf("whoami with the login token: %d %v", code, who)
	}
	return token
}

var keyLine = regexp.MustCompile(`^ed25519 [A-Za-z0-9_]+ [A-Za-z0-9+/]{43}\n$`)

func readKey(t *testing.T, path string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("signing key: %v", err)
	}
	if !keyLine.Match(raw) {
		t.Fatalf("signing key %q is not \"ed25519 <version> <base64>\"", raw)
	}
	if _, err := signing.Parse(string(raw)); err != nil {
		t.Fatalf("signing key does not parse: %v", err)
	}
	return string(raw)
}

func TestServeFromEnvironmentAndRestart(t *testing.T) {
	t.Parallel()
	env := serveEnv(t)
	env["MYELIN_OPEN_REGISTRATION"] = "true"
	dataDir := env["MYELIN_DATA_DIR"]

	p := serve(t, env)
	key := readKey(t, filepath.Join(dataDir, "signing.key"))
	if fi, err := os.Stat(filepath.Join(dataDir, "signing.key")); err != nil {
		t.Fatal(err)
	} else if fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("signing.key has mode %v, want it private to its owner", fi.Mode().Perm())
	}
	if _, err := os.Stat(filepath.Join(dataDir, "myelin.db")); err != nil {
		t.Fatalf("no SQLite database in the data directory: %v", err)
	}
	register(t, p.URL, "alice", "secret-pw")
	login(t, p.URL, "alice", "secret-pw")
	if code, body := loginRaw(t, p.URL, "alice", "wrong"); code != http.StatusForbidden || body["errcode"] != "M_FORBIDDEN" {
		t.Fatalf("login with a wrong password: %d %v, want 403 M_FORBIDDEN", code, body)
	}
	// Without a federation listener the client listener serves federation.
	if code, body := testserver.Do(t, nil, "GET", p.URL+"/_matrix/federation/v1/version", "", nil); code != http.StatusOK ||
		fmt.Sprint(body["server"]) != fmt.Sprint(map[string]any{"name": "Myelin", "version": server.Version}) {
		t.Fatalf("federation version on the client listener: %d %v", code, body)
	}
	// Shared-secret registration is off unless configured.
	if code, body := testserver.Do(t, nil, "GET", p.URL+"/_synapse/admin/v1/register", "", nil); code != http.StatusForbidden || body["errcode"] != "M_FORBIDDEN" {
		t.Fatalf("shared-secret nonce without a secret: %d %v, want 403", code, body)
	}
	p.stop()

	p = serve(t, env)
	if again := readKey(t, filepath.Join(dataDir, "signing.key")); again != key {
		t.Fatalf("the signing key changed across a restart:\n%s\n%s", key, again)
	}
	login(t, p.URL, "alice", "secret-pw")
	// The name is still taken.
	if code, body := testserver.Do(t, nil, "POST", p.URL+"/_matrix/client/v3/register", "", map[string]any{"username": "alice", "password": "x"}); code != http.StatusBadRequest || body["errcode"] != "M_USER_IN_USE" {
		t.Fatalf("registering alice again after a restart: %d %v, want 400 M_USER_IN_USE", code, body)
	}
	p.stop()
}

func TestServePostgres(t *testing.T) {
	if os.Getenv(testdb.PostgresEnv) == "" {
		t.Skipf("%s is not set", testdb.PostgresEnv)
	}
	t.Parallel()
	env := serveEnv(t)
	env["MYELIN_OPEN_REGISTRATION"] = "true"
	env["MYELIN_DATABASE_URL"] = testdb.NewURL(t, "postgres")
	p := serve(t, env)
	register(t, p.URL, "bob", "pg-pw")
	login(t, p.URL, "bob", "pg-pw")
	p.stop()
	entries, err := os.ReadDir(env["MYELIN_DATA_DIR"])
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "myelin.db") {
			t.Errorf("a PostgreSQL server created %s in its data directory", e.Name())
		}
	}
	if _, err := os.Stat(filepath.Join(env["MYELIN_DATA_DIR"], "signing.key")); err != nil {
		t.Errorf("no signing key with PostgreSQL: %v", err)
	}
}

func TestServeListenersAndSwitches(t *testing.T) {
	t.Parallel()
	certFile, keyFile, pool := testserver.SelfSignedCert(t)
	env := serveEnv(t)
	env["MYELIN_METRICS_LISTEN"] = freeAddr(t)
	env["MYELIN_FEDERATION_LISTEN"] = freeAddr(t)
	env["MYELIN_TLS_CERT"] = certFile
	env["MYELIN_TLS_KEY"] = keyFile
	env["MYELIN_REGISTRATION_SHARED_SECRET"] = "bin-secret"
	// MYELIN_OPEN_REGISTRATION unset: registration is closed by default.
	p := serve(t, env)

	t.Run("register closed", func(t *testing.T) {
		code, body := testserver.Do(t, nil, "POST", p.URL+"/_matrix/client/v3/register", "", map[string]any{"username": "eve", "password": "pw"})
		if code != http.StatusForbidden || body["errcode"] != "M_FORBIDDEN" {
			t.Fatalf("register with registration closed: %d %v, want 403 M_FORBIDDEN", code, body)
		}
	})

	t.Run("shared secret nonce", func(t *testing.T) {
		code, body := testserver.Do(t, nil, "GET", p.URL+"/_synapse/admin/v1/register", "", nil)
		if nonce, _ := body["nonce"].(string); code != http.StatusOK || nonce == "" {
			t.Fatalf("GET /_synapse/admin/v1/register: %d %v, want a nonce", code, body)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		resp, err := http.Get("http://" + p.addr("metrics") + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/metrics: %d", resp.StatusCode)
		}
		for _, name := range []string{"go_goroutines", "myelin_http_requests_total"} {
			if !bytes.Contains(raw, []byte(name)) {
				t.Errorf("/metrics has no %s:\n%.500s", name, raw)
			}
		}
	})

	t.Run("federation over TLS", func(t *testing.T) {
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 5 * time.Second}
		code, body := testserver.Do(t, client, "GET", "https://"+p.addr("federation")+"/_matrix/federation/v1/version", "", nil)
		if code != http.StatusOK {
			t.Fatalf("federation version over TLS: %d %v", code, body)
		}
		srv, _ := body["server"].(map[string]any)
		if srv["name"] != "Myelin" || srv["version"] != server.Version {
			t.Fatalf("federation version body = %v", body)
		}
		// Plain HTTP on the TLS port does not get a Matrix answer.
		if resp, err := http.Get("http://" + p.addr("federation") + "/_matrix/federation/v1/version"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Fatal("the federation listener answered plain HTTP")
			}
		}
		// With a federation listener, the client listener no longer serves federation.
		if code, body := testserver.Do(t, nil, "GET", p.URL+"/_matrix/federation/v1/version", "", nil); code != http.StatusNotFound {
			t.Fatalf("federation version on the client listener: %d %v, want 404", code, body)
		}
	})
	p.stop()
}

func TestServeRateLimit(t *testing.T) {
	t.Parallel()
	t.Run("off", func(t *testing.T) {
		t.Parallel()
		env := serveEnv(t)
		env["MYELIN_OPEN_REGISTRATION"] = "true"
		env["MYELIN_RATE_LIMIT"] = "off"
		p := serve(t, env)
		register(t, p.URL, "rl", "pw")
		for i := 1; i <= 10; i++ {
			if code, body := loginRaw(t, p.URL, "rl", "pw"); code != http.StatusOK {
				t.Fatalf("login %d with MYELIN_RATE_LIMIT=off: %d %v", i, code, body)
			}
		}
	})
	t.Run("default on", func(t *testing.T) {
		t.Parallel()
		env := serveEnv(t)
		env["MYELIN_OPEN_REGISTRATION"] = "true"
		p := serve(t, env)
		register(t, p.URL, "rl", "pw")
		for i := 1; i <= 3; i++ {
			if code, body := loginRaw(t, p.URL, "rl", "pw"); code != http.StatusOK {
				t.Fatalf("login %d: %d %v, want 200 within the burst", i, code, body)
			}
		}
		code, body := loginRaw(t, p.URL, "rl", "pw")
		if code != http.StatusTooManyRequests || body["errcode"] != "M_LIMIT_EXCEEDED" {
			t.Fatalf("4th login: %d %v, want 429 M_LIMIT_EXCEEDED", code, body)
		}
		if ms, _ := body["retry_after_ms"].(float64); ms <= 0 {
			t.Fatalf("429 without a positive retry_after_ms: %v", body)
		}
	})
}

// TestServeSIGTERMAnswersLongPolls: SIGTERM ends `myelin serve` cleanly
// within 5 s (proc.stop) although a /sync long-polls for 30 s, and the
// long-poll is answered (200 with a next_batch), not cut.
func TestServeSIGTERMAnswersLongPolls(t *testing.T) {
	t.Parallel()
	env := serveEnv(t)
	env["MYELIN_OPEN_REGISTRATION"] = "true"
	env["MYELIN_METRICS_LISTEN"] = freeAddr(t)
	p := serve(t, env)
	metrics := "http://" + p.addr("metrics") + "/metrics"
	token := register(t, p.URL, "poller", "pw")
	code, body := testserver.Do(t, nil, "GET", p.URL+"/_matrix/client/v3/sync", token, nil)
	since, _ := body["next_batch"].(string)
	if code != http.StatusOK || since == "" {
		t.Fatalf("initial sync: %d %v", code, body)
	}
	type answer struct {
		code int
		body map[string]any
		err  error
	}
	polled := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest("GET", p.URL+"/_matrix/client/v3/sync?timeout=30000&since="+since, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			polled <- answer{err: err}
			return
		}
		defer res.Body.Close()
		var body map[string]any
		err = json.NewDecoder(res.Body).Decode(&body)
		polled <- answer{res.StatusCode, body, err}
	}()
	// The poll must be waiting when the signal comes: a fixed pause was
	// not always enough on a loaded machine, and a poll that had not
	// reached the server yet failed to connect.
	for deadline := time.Now().Add(10 * time.Second); !longPolls(t, metrics); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the long-poll never reached the server")
		}
	}
	p.stop()
	select {
	case a := <-polled:
		if a.err != nil || a.code != http.StatusOK || a.body["next_batch"] == nil {
			t.Fatalf("long-poll at SIGTERM: %d %v %v, want 200 with next_batch", a.code, a.body, a.err)
		}
	case <-time.After(time.Second):
		t.Fatal("the long-poll was not answered at SIGTERM")
	}
}

// longPolls says whether a /sync long-poll waits on the server whose
// metrics are at url.
func longPolls(t *testing.T, url string) bool {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "myelin_sync_long_polls "); ok && v != "0" {
			return true
		}
	}
	return false
}

func TestServeInvalidConfig(t *testing.T) {
	t.Parallel()
	cfgFile := filepath.Join(t.TempDir(), "myelin.yaml")
	if err := os.WriteFile(cfgFile, []byte("auth:\n  bcrypt_cost: 2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		env   map[string]string
		args  []string
		field string
	}{
		{"env", map[string]string{"MYELIN_CLIENT_LISTEN": "nonsense"}, nil, "listen.client"},
		{"file", nil, []string{"--config", cfgFile}, "auth.bcrypt_cost"},
		{"env bool", map[string]string{"MYELIN_OPEN_REGISTRATION": "maybe"}, nil, "MYELIN_OPEN_REGISTRATION"},
		{"env CIDR", map[string]string{"MYELIN_OUTBOUND_ALLOW": "127.0.0.0/8,localhost"}, nil, "MYELIN_OUTBOUND_ALLOW"},
		{"missing file", nil, []string{"--config", cfgFile + ".missing"}, "myelin.yaml.missing"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"MYELIN_DATA_DIR": t.TempDir()}
			for k, v := range tt.env {
				env[k] = v
			}
			start := time.Now()
			r := run(t, env, "", append([]string{"serve"}, tt.args...)...)
			if r.code == 0 {
				t.Fatalf("serve with an invalid config exited 0; stderr:\n%s", r.stderr)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("serve took %v to reject the config", took)
			}
			if !strings.Contains(r.stderr, tt.field) {
				t.Fatalf("stderr does not name %s:\n%s", tt.field, r.stderr)
			}
			// Nothing was created for a server that never started.
			if entries, _ := os.ReadDir(env["MYELIN_DATA_DIR"]); len(entries) != 0 {
				t.Errorf("the data directory was written: %v", entries)
			}
		})
	}
}

func TestGenerateKeys(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "keys", "signing.key")
	r := run(t, nil, "", "generate-keys", "--output", out)
	if r.code != 0 {
		t.Fatalf("generate-keys: exit %d\n%s", r.code, r.stderr)
	}
	first := readKey(t, out)
	key, _ := signing.Parse(first)
	if !strings.Contains(r.stdout, out) || !strings.Contains(r.stdout, key.ID) {
		t.Errorf("generate-keys output %q names neither the file nor the key ID %s", r.stdout, key.ID)
	}

	r = run(t, nil, "", "generate-keys", "--output", out)
	if r.code == 0 {
		t.Fatal("generate-keys overwrote an existing key file")
	}
	if !strings.Contains(r.stderr, "already exists") {
		t.Errorf("refusal does not say the file exists: %s", r.stderr)
	}
	if again := readKey(t, out); again != first {
		t.Fatal("the existing key file changed")
	}

	r = run(t, nil, "", "generate-keys", "--output", "-")
	if r.code != 0 {
		t.Fatalf("generate-keys --output -: exit %d\n%s", r.code, r.stderr)
	}
	if !keyLine.MatchString(r.stdout) {
		t.Fatalf("generate-keys --output - printed %q", r.stdout)
	}
	printed, err := signing.Parse(r.stdout)
	if err != nil {
		t.Fatal(err)
	}
	if printed.ID == key.ID && bytes.Equal(printed.Private, key.Private) {
		t.Fatal("two generated keys are identical")
	}
}

func TestCreateAccount(t *testing.T) {
	t.Parallel()
	env := serveEnv(t)
	r := run(t, env, "", "create-account", "--user", "carol", "--password", "pw", "--admin")
	if r.code != 0 {
		t.Fatalf("create-account carol: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "@carol:bin.test") || !strings.Contains(r.stdout, "admin: true") {
		t.Errorf("create-account output = %q", r.stdout)
	}
	r = run(t, env, "", "create-account", "--user", "carol", "--password", "other")
	if r.code == 0 {
		t.Fatal("create-account for an existing user succeeded")
	}
	// The password comes from standard input when --password is absent.
	r = run(t, env, "stdin-pw\n", "create-account", "--user", "@dave:bin.test")
	if r.code != 0 {
		t.Fatalf("create-account dave: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "@dave:bin.test") || !strings.Contains(r.stdout, "admin: false") {
		t.Errorf("create-account output = %q", r.stdout)
	}
	if r := run(t, env, "", "create-account", "--user", "@erin:elsewhere.test", "--password", "pw"); r.code == 0 {
		t.Error("create-account for a user of another server succeeded")
	}
	if r := run(t, env, "", "create-account", "--password", "pw"); r.code == 0 {
		t.Error("create-account without --user succeeded")
	}

	p := serve(t, env)
	adminToken := login(t, p.URL, "carol", "pw")
	tokens := p.URL + "/_synapse/admin/v1/registration_tokens"
	if code, body := testserver.Do(t, nil, "GET", tokens, adminToken, nil); code != http.StatusOK {
		t.Fatalf("admin GET registration_tokens: %d %v", code, body)
	} else if _, ok := body["registration_tokens"].([]any); !ok {
		t.Fatalf("registration_tokens body = %v", body)
	}
	userToken := login(t, p.URL, "dave", "stdin-pw")
	if code, body := testserver.Do(t, nil, "GET", tokens, userToken, nil); code != http.StatusForbidden || body["errcode"] != "M_FORBIDDEN" {
		t.Fatalf("non-admin GET registration_tokens: %d %v, want 403", code, body)
	}
	if code, _ := loginRaw(t, p.URL, "carol", "other"); code != http.StatusForbidden {
		t.Fatalf("the failed second create-account changed carol's password (login with it: %d)", code)
	}
	p.stop()
}

func TestConfigVersionAndUsage(t *testing.T) {
	t.Parallel()
	r := run(t, nil, "", "config")
	if r.code != 0 || r.stdout != config.DefaultYAML() {
		t.Fatalf("myelin config: exit %d, output differs from config.DefaultYAML()", r.code)
	}
	path := filepath.Join(t.TempDir(), "myelin.yaml")
	if err := os.WriteFile(path, []byte(r.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("config.Load rejects `myelin config` output: %v", err)
	}
	if cfg.Listen.Client != config.Default().Listen.Client {
		t.Errorf("listen.client = %q", cfg.Listen.Client)
	}

	r = run(t, nil, "", "version")
	if r.code != 0 || r.stdout != "myelin "+server.Version+"\n" {
		t.Fatalf("myelin version: exit %d, %q", r.code, r.stdout)
	}

	r = run(t, nil, "", "frobnicate")
	if r.code == 0 {
		t.Fatal("an unknown command exited 0")
	}
	if !strings.Contains(r.stderr, `unknown command "frobnicate"`) || !strings.Contains(r.stderr, "Usage:") {
		t.Fatalf("unknown command stderr:\n%s", r.stderr)
	}

	r = run(t, nil, "", "help")
	if r.code != 0 || !strings.Contains(r.stdout, "create-account") {
		t.Fatalf("myelin help: exit %d\n%s", r.code, r.stdout)
	}
}
