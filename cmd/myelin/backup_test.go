package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/testdb"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// sendLoad sends messages into room until stop is closed, and records
// the event ID of every send the server acknowledged with 200, and when
// each was sent and answered.
type sendLoad struct {
	mu    sync.Mutex
	acked []string
	spans [][2]time.Time
	err   error
	stop  chan struct{}
	done  chan struct{}
}

func startSendLoad(base, token, room string) *sendLoad {
	l := &sendLoad{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for i := 0; ; i++ {
			select {
			case <-l.stop:
				return
			default:
			}
			body := strings.NewReader(fmt.Sprintf(`{"msgtype":"m.text","body":"message %d"}`, i))
			req, _ := http.NewRequest("PUT", fmt.Sprintf("%s/_matrix/client/v3/rooms/%s/send/m.room.message/load%d",
				base, url.PathEscape(room), i), body)
			req.Header.Set("Authorization", "Bearer "+token)
			sent := time.Now()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				l.fail(err)
				return
			}
			var out struct {
				EventID string `json:"event_id"`
			}
			err = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || err != nil || out.EventID == "" {
				l.fail(fmt.Errorf("send %d: status %d, %v", i, resp.StatusCode, err))
				return
			}
			l.mu.Lock()
			l.acked = append(l.acked, out.EventID)
			l.spans = append(l.spans, [2]time.Time{sent, time.Now()})
			l.mu.Unlock()
		}
	}()
	return l
}

func (l *sendLoad) fail(err error) {
	l.mu.Lock()
	l.err = err
	l.mu.Unlock()
}

func (l *sendLoad) snapshot() ([]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.acked...), l.err
}

// overlapped says whether an acknowledged send was in flight at some
// moment between from and to: sent before to, answered after from.
func (l *sendLoad) overlapped(from, to time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, sp := range l.spans {
		if sp[0].Before(to) && sp[1].After(from) {
			return true
		}
	}
	return false
}

func (l *sendLoad) finish(t *testing.T) {
	close(l.stop)
	<-l.done
	if _, err := l.snapshot(); err != nil {
		t.Fatal(err)
	}
}

// A backup taken while clients send holds every event acknowledged
// before it began, the media, and the signing key; restored into a new
// data directory, the server starts on it as the same server.
func TestBackupUnderLoadRestores(t *testing.T) {
	t.Parallel()
	env := serveEnv(t)
	env["MYELIN_OPEN_REGISTRATION"] = "true"
	env["MYELIN_RATE_LIMIT"] = "off"
	p := serve(t, env)
	token := register(t, p.URL, "alice", "secret-pw")
	code, body := testserver.Do(t, nil, "POST", p.URL+"/_matrix/client/v3/createRoom", token, map[string]any{"name": "backed up"})
	if code != http.StatusOK {
		t.Fatalf("createRoom: %d %v", code, body)
	}
	room := body["room_id"].(string)
	media := bytes.Repeat([]byte("backup media "), 1000)
	req, _ := http.NewRequest("POST", p.URL+"/_matrix/media/v3/upload?filename=a.txt", bytes.NewReader(media))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var up struct {
		ContentURI string `json:"content_uri"`
	}
	json.NewDecoder(resp.Body).Decode(&up)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(up.ContentURI, "mxc://bin.test/") {
		t.Fatalf("upload: %d %q", resp.StatusCode, up.ContentURI)
	}

	load := startSendLoad(p.URL, token, room)
	for deadline := time.Now().Add(20 * time.Second); ; {
		acked, err := load.snapshot()
		if err != nil {
			t.Fatal(err)
		}
		if len(acked) >= 30 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d sends acknowledged in 20s", len(acked))
		}
		time.Sleep(10 * time.Millisecond)
	}
	before, _ := load.snapshot()
	dir := filepath.Join(t.TempDir(), "backup")
	began := time.Now()
	r := run(t, env, "", "backup", dir)
	ended := time.Now()
	during, _ := load.snapshot()
	load.finish(t)
	if r.code != 0 {
		t.Fatalf("backup: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Under load: a send was in flight while the backup ran. Whether one
	// was also answered before it ended is the machine's timing: a
	// backup of this small database took 0.12 s on a loaded machine,
	// one send as long, answered just after it.
	if !load.overlapped(began, ended) {
		t.Fatalf("no send was in flight while the backup ran (%d before): not a backup under load", len(before))
	}
	p.stop()
	key := readKey(t, filepath.Join(env["MYELIN_DATA_DIR"], "signing.key"))

	env2 := maps.Clone(env)
	env2["MYELIN_DATA_DIR"] = filepath.Join(t.TempDir(), "restored")
	if r := run(t, env2, "", "restore", dir); r.code != 0 {
		t.Fatalf("restore: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := readKey(t, filepath.Join(env2["MYELIN_DATA_DIR"], "signing.key")); got != key {
		t.Fatal("the restored signing key differs from the server's")
	}
	// A second restore onto the restored server is refused without --force.
	if r := run(t, env2, "", "restore", dir); r.code == 0 || !strings.Contains(r.stderr, "--force") {
		t.Fatalf("restore onto a non-empty data directory: exit %d\n%s", r.code, r.stderr)
	}
	// With --force it replaces them; the server below starts on that.
	if r := run(t, env2, "", "restore", "--force", dir); r.code != 0 {
		t.Fatalf("restore --force: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	p2 := serve(t, env2)
	token2 := login(t, p2.URL, "alice", "secret-pw")
	for _, id := range before {
		code, body := testserver.Do(t, nil, "GET", fmt.Sprintf("%s/_matrix/client/v3/rooms/%s/event/%s",
			p2.URL, url.PathEscape(room), url.PathEscape(id)), token2, nil)
		if code != http.StatusOK {
			t.Fatalf("event %s, acknowledged before the backup, after restore: %d %v", id, code, body)
		}
	}
	mediaID := strings.TrimPrefix(up.ContentURI, "mxc://bin.test/")
	req, _ = http.NewRequest("GET", p2.URL+"/_matrix/client/v1/media/download/bin.test/"+mediaID, nil)
	req.Header.Set("Authorization", "Bearer "+token2)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, media) {
		t.Fatalf("media after restore: %d, %d bytes (want %d)", resp.StatusCode, len(got), len(media))
	}
	t.Logf("%d events acknowledged before the backup, %d by its end; all of the first found after restore", len(before), len(during))
}

// A restore refuses a damaged backup, a backup of another server, one
// taken by a newer Myelin, one of the other database engine, and a
// backup into the data directory it is read from.
func TestRestoreRefuses(t *testing.T) {
	t.Parallel()
	env := serveEnv(t)
	p := serve(t, env)
	p.stop()
	dir := filepath.Join(t.TempDir(), "backup")
	if r := run(t, env, "", "backup", dir); r.code != 0 {
		t.Fatalf("backup: exit %d\n%s", r.code, r.stderr)
	}
	if r := run(t, env, "", "backup", filepath.Join(env["MYELIN_DATA_DIR"], "inside")); r.code == 0 {
		t.Fatal("a backup into the data directory itself was written")
	}

	other := maps.Clone(env)
	other["MYELIN_DATA_DIR"] = t.TempDir()
	other["MYELIN_SERVER_NAME"] = "other.test"
	if r := run(t, other, "", "restore", dir); r.code == 0 || !strings.Contains(r.stderr, "server name") {
		t.Fatalf("restore under another server name: exit %d\n%s", r.code, r.stderr)
	}

	// A backup taken by a newer Myelin: its schema has a migration this
	// binary does not know, which it could misread.
	manifest := filepath.Join(dir, "manifest.json")
	orig, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(orig, &m); err != nil {
		t.Fatal(err)
	}
	m["migrations"] = append(m["migrations"].([]any), "9999_from_the_future.sql")
	newer, _ := json.Marshal(m)
	if err := os.WriteFile(manifest, newer, 0o600); err != nil {
		t.Fatal(err)
	}
	empty := maps.Clone(env)
	empty["MYELIN_DATA_DIR"] = t.TempDir()
	if r := run(t, empty, "", "restore", dir); r.code == 0 || !strings.Contains(r.stderr, "newer Myelin") || !strings.Contains(r.stderr, "9999_from_the_future.sql") {
		t.Fatalf("restore of a newer version's backup: exit %d\n%s", r.code, r.stderr)
	}
	if err := os.WriteFile(manifest, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	// A SQLite backup into a server configured on PostgreSQL (never
	// connected to: the refusal comes first).
	pg := maps.Clone(empty)
	pg["MYELIN_DATABASE_URL"] = "postgres://myelin@127.0.0.1:1/none?sslmode=disable"
	if r := run(t, pg, "", "restore", dir); r.code == 0 || !strings.Contains(r.stderr, "same engine") {
		t.Fatalf("restore of a SQLite backup onto PostgreSQL: exit %d\n%s", r.code, r.stderr)
	}
	if entries, _ := os.ReadDir(empty["MYELIN_DATA_DIR"]); len(entries) != 0 {
		t.Fatalf("refused restores wrote %d entries", len(entries))
	}

	raw, err := os.ReadFile(filepath.Join(dir, "signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "signing.key"), append(raw, ' '), 0o600); err != nil {
		t.Fatal(err)
	}
	fresh := maps.Clone(env)
	fresh["MYELIN_DATA_DIR"] = t.TempDir()
	if r := run(t, fresh, "", "restore", dir); r.code == 0 || !strings.Contains(r.stderr, "checksum") {
		t.Fatalf("restore of a damaged backup: exit %d\n%s", r.code, r.stderr)
	}
	if entries, _ := os.ReadDir(fresh["MYELIN_DATA_DIR"]); len(entries) != 0 {
		t.Fatalf("a refused restore wrote %d entries", len(entries))
	}
}

// On PostgreSQL, a backup holds the files and says how to dump the
// database; a restore puts the files back and says how to restore it.
func TestBackupPostgres(t *testing.T) {
	t.Parallel()
	if !strings.Contains(strings.Join(testdb.Engines(), ","), "postgres") {
		t.Skip(testdb.PostgresEnv + " is not set")
	}
	env := serveEnv(t)
	env["MYELIN_DATABASE_URL"] = testdb.NewURL(t, "postgres")
	p := serve(t, env)
	dir := filepath.Join(t.TempDir(), "backup")
	r := run(t, env, "", "backup", dir)
	p.stop()
	if r.code != 0 || !strings.Contains(r.stdout, "pg_dump") {
		t.Fatalf("backup: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "signing.key")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "database.sqlite")); err == nil {
		t.Fatal("a PostgreSQL backup holds a SQLite database")
	}
	var m struct {
		Database   string   `json:"database"`
		Migrations []string `json:"migrations"`
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err := json.Unmarshal(raw, &m); err != nil || m.Database != "postgres" || len(m.Migrations) == 0 {
		t.Fatalf("manifest: %v %+v", err, m)
	}
	// restore puts the files back into a new data directory and says
	// how to restore the database.
	env2 := maps.Clone(env)
	env2["MYELIN_DATA_DIR"] = filepath.Join(t.TempDir(), "restored")
	r = run(t, env2, "", "restore", dir)
	if r.code != 0 || !strings.Contains(r.stdout, "pg_restore") {
		t.Fatalf("restore: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if readKey(t, filepath.Join(env2["MYELIN_DATA_DIR"], "signing.key")) != readKey(t, filepath.Join(env["MYELIN_DATA_DIR"], "signing.key")) {
		t.Fatal("the restored signing key differs from the server's")
	}
}

// The machine is lost: on a new one, with nothing but the binary and the
// backup, myelin restore --config PATH puts the configuration file back
// at PATH and the data where that configuration says, and the server
// starts from them as the same server.
func TestRestoreOntoANewMachine(t *testing.T) {
	t.Parallel()
	data := filepath.Join(t.TempDir(), "data")
	yaml := fmt.Sprintf("server_name: bin.test\ndata_dir: %s\nlisten:\n  client: 127.0.0.1:0\nauth:\n  bcrypt_cost: 4\n", data)
	cfgPath := filepath.Join(t.TempDir(), "etc", "myelin.yaml")
	if err := os.MkdirAll(filepath.Dir(cfgPath), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	// The server ran there (and made its signing key).
	serve(t, env, "--config", cfgPath).stop()
	if r := run(t, env, "", "create-account", "--config", cfgPath, "--user", "alice", "--password", "alice-pw"); r.code != 0 {
		t.Fatalf("create-account: %d %s", r.code, r.stderr)
	}
	dir := filepath.Join(t.TempDir(), "backup")
	if r := run(t, env, "", "backup", "--config", cfgPath, dir); r.code != 0 {
		t.Fatalf("backup: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	key := readKey(t, filepath.Join(data, "signing.key"))
	// The machine and everything on it are gone.
	if err := os.RemoveAll(data); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Dir(cfgPath)); err != nil {
		t.Fatal(err)
	}

	if r := run(t, env, "", "restore", "--config", cfgPath, dir); r.code != 0 {
		t.Fatalf("restore onto a new machine: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got, err := os.ReadFile(cfgPath); err != nil || string(got) != yaml {
		t.Fatalf("the restored configuration: %v\n%s", err, got)
	}
	if readKey(t, filepath.Join(data, "signing.key")) != key {
		t.Fatal("the restored signing key differs from the server's")
	}
	p := serve(t, env, "--config", cfgPath)
	login(t, p.URL, "alice", "alice-pw")
}
