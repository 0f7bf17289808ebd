package main_test

import (
	"maps"
	"net/http"
	"strings"
	"testing"

	"github.com/myelin-chat/myelin/internal/testdb"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// myelin migrate-db moves a stopped server from SQLite to PostgreSQL,
// shows each table verified, and tells the admin the setting to change;
// the server then starts on PostgreSQL with its accounts and rooms. It
// refuses a target that is not empty, and a server that is running.
func TestMigrateDBCommand(t *testing.T) {
	t.Parallel()
	if !strings.Contains(strings.Join(testdb.Engines(), ","), "postgres") {
		t.Skip(testdb.PostgresEnv + " is not set")
	}
	env := serveEnv(t)
	env["MYELIN_OPEN_REGISTRATION"] = "true"
	p := serve(t, env)
	token := register(t, p.URL, "alice", "secret-pw")
	code, body := testserver.Do(t, nil, "POST", p.URL+"/_matrix/client/v3/createRoom", token, map[string]any{"name": "moving"})
	if code != http.StatusOK {
		t.Fatalf("createRoom: %d %v", code, body)
	}
	room := body["room_id"].(string)
	pg := testdb.NewURL(t, "postgres")

	// While the server runs on a fixed address, the copy is refused.
	running := maps.Clone(env)
	running["MYELIN_CLIENT_LISTEN"] = p.addr("client")
	if r := run(t, running, "", "migrate-db", "--to", pg); r.code == 0 || !strings.Contains(r.stderr, "stop it first") {
		t.Fatalf("migrate-db beside a running server: exit %d\n%s", r.code, r.stderr)
	}
	p.stop()

	r := run(t, env, "", "migrate-db", "--to", pg)
	if r.code != 0 {
		t.Fatalf("migrate-db: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"events", "verified", "MYELIN_DATABASE_URL", pg} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("migrate-db output lacks %q:\n%s", want, r.stdout)
		}
	}
	if r := run(t, env, "", "migrate-db", "--to", pg); r.code == 0 || !strings.Contains(r.stderr, "not empty") {
		t.Fatalf("a second migrate-db into the same database: exit %d\n%s", r.code, r.stderr)
	}

	moved := maps.Clone(env)
	moved["MYELIN_DATABASE_URL"] = pg
	p2 := serve(t, moved)
	token2 := login(t, p2.URL, "alice", "secret-pw")
	code, body = testserver.Do(t, nil, "GET", p2.URL+"/_matrix/client/v3/rooms/"+room+"/state/m.room.name/", token2, nil)
	if code != http.StatusOK || body["name"] != "moving" {
		t.Fatalf("the room on PostgreSQL: %d %v", code, body)
	}
}
