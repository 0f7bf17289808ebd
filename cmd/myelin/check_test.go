package main_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/myelin-chat/myelin/internal/testdb"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// myelin check, run on the server (its configuration and signing key),
// passes a server reachable as its name says, and fails with what to
// fix when the name leads nowhere. The checks themselves are tested in
// internal/selfcheck.
func TestCheckCommand(t *testing.T) {
	t.Parallel()
	ca := testserver.NewCA(t)
	cfg := testserver.Config(t, testdb.NewURL(t, "sqlite"))
	cfg.ServerName = "check.test"
	cfg.Listen.TLSCert, cfg.Listen.TLSKey = ca.Issue(t, "check.test")
	cfg.Listen.ClientTLS = true
	cfg.Federation.Enabled = true
	cfg.WellKnown.Server = "check.test:443"
	cfg.WellKnown.ClientBaseURL = "https://check.test"
	s := testserver.StartConfig(t, cfg)
	env := map[string]string{"MYELIN_SERVER_NAME": "check.test", "MYELIN_DATA_DIR": cfg.DataDir}

	r := run(t, env, "", "check", "--json", "--ca", ca.File(), "--resolve", "check.test:443="+s.Addr("client"))
	var out struct {
		OK       bool `json:"ok"`
		Findings []struct {
			Check, Level string
		} `json:"findings"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || r.code != 0 || !out.OK {
		t.Fatalf("check of a healthy server: exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	// Its signing key was compared with the one the server publishes.
	if !strings.Contains(r.stdout, "signing keys") {
		t.Fatalf("no signing key check:\n%s", r.stdout)
	}

	r = run(t, env, "", "check", "--ca", ca.File(), "--resolve", "check.test:443="+testserver.ClosedAddr(t),
		"--resolve", "check.test:8448="+testserver.ClosedAddr(t))
	if r.code == 0 || !strings.Contains(r.stdout, "FAIL federation port") || !strings.Contains(r.stdout, "fix:") {
		t.Fatalf("check of an unreachable server: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
