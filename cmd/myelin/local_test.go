package main_test

import (
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/myelin-chat/myelin/internal/testdb"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// Without a reverse proxy the client listener serves TLS, often on a
// wildcard address (":443"). The commands that talk to the server on
// this machine find it there all the same: myelin admin signs in and
// works, and myelin migrate-db sees the server running and refuses to
// copy a database being written (over plain HTTP it saw nothing).
func TestLocalCommandsFindATLSListener(t *testing.T) {
	t.Parallel()
	ca := testserver.NewCA(t)
	cfg := testserver.Config(t, testdb.NewURL(t, "sqlite"))
	cfg.ServerName = "tls.test"
	cfg.Listen.TLSCert, cfg.Listen.TLSKey = ca.Issue(t, "tls.test")
	cfg.Listen.ClientTLS = true
	env := map[string]string{"MYELIN_DATA_DIR": cfg.DataDir, "MYELIN_DATABASE_URL": cfg.DatabaseURL(), "MYELIN_SERVER_NAME": "tls.test",
		"MYELIN_CLIENT_TLS": "true", "MYELIN_TLS_CERT": cfg.Listen.TLSCert, "MYELIN_TLS_KEY": cfg.Listen.TLSKey, "MYELIN_BCRYPT_COST": "4"}
	if r := run(t, env, "", "create-account", "--user", "root", "--password", "root-pw", "--admin"); r.code != 0 {
		t.Fatalf("create-account: %d %s", r.code, r.stderr)
	}
	s := testserver.StartConfig(t, cfg)
	_, port, err := net.SplitHostPort(s.Addr("client"))
	if err != nil {
		t.Fatal(err)
	}
	env["MYELIN_CLIENT_LISTEN"] = ":" + port

	r := run(t, env, "", "admin", "status")
	if r.code != 0 || !regexpLine(r.stdout, `users\s+1`) {
		t.Fatalf("admin status against a TLS listener: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, env, "", "migrate-db", "--to", filepath.Join(t.TempDir(), "new.db"))
	if r.code == 0 || !strings.Contains(r.stderr, "stop it first") {
		t.Fatalf("migrate-db beside a server running over TLS: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
