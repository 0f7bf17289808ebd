package server_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testdb"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// goroutinesIn counts the goroutines whose stack has frame in it.
func goroutinesIn(frame string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, frame) {
			count++
		}
	}
	return count
}

// readDir is the contents of the files in dir, by name.
func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = raw
	}
	return out
}

// A shut-down server leaves nothing of its ACME manager running:
// autocert.Manager cannot be closed, but its connections to the ACME
// server are (no goroutine is left reading them), and the renewal its
// timer still starts neither reaches the ACME server nor writes the
// data directory. Not parallel, so that no other test's HTTP clients
// come and go while the goroutines are counted.
func TestACMEStopsWithTheServer(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go command is needed to build pebble")
	}
	ca := testserver.NewCA(t)
	port := freePort(t)
	// Certificates of 6 s: autocert renews after about 4 s, once the
	// server has shut down.
	dirURL, roots := startPebble(t, ca, loopbackDNS(t), port, freePort(t), 6*time.Second)
	cfg := testserver.Config(t, testdb.NewURL(t, "sqlite"))
	cfg.ServerName = "acme.test"
	cfg.Listen.Client = "127.0.0.1:" + strconv.Itoa(port)
	cfg.Listen.ClientTLS = true
	cfg.Federation.Enabled = true
	cfg.ACME = config.ACME{Domain: "acme.test", Email: "admin@acme.test", CAFile: ca.File(), DirectoryURL: dirURL}

	const conns = "net/http.(*persistConn)"
	before := goroutinesIn(conns)
	s := testserver.StartConfig(t, cfg)
	cert, err := handshake(t, s.Addr("client"), "acme.test", roots)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if goroutinesIn(conns) <= before {
		t.Fatal("no connection to the ACME server was kept alive: the test shows nothing")
	}
	s.Stop()
	kept := readDir(t, filepath.Join(cfg.DataDir, "acme"))

	for deadline := time.Now().Add(5 * time.Second); goroutinesIn(conns) > before; {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines of HTTP connections after Shutdown, %d before the server started", goroutinesIn(conns), before)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Past the time autocert's timer renews the certificate.
	time.Sleep(time.Until(cert.NotAfter) + time.Second)
	if n := goroutinesIn("acme/autocert"); n != 0 {
		t.Errorf("%d goroutines of autocert after Shutdown", n)
	}
	now := readDir(t, filepath.Join(cfg.DataDir, "acme"))
	if len(now) != len(kept) {
		t.Fatalf("the ACME cache changed after Shutdown: %d files, %d at Shutdown", len(now), len(kept))
	}
	for name, raw := range kept {
		if !bytes.Equal(now[name], raw) {
			t.Fatalf("the ACME cache's %s was written after Shutdown (a renewal ran)", name)
		}
	}
}
