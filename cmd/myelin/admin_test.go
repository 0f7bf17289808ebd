package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// myelin admin drives a running server's admin API from the shell,
// signing in as its admin through the database and out again.
func TestAdminCommands(t *testing.T) {
	t.Parallel()
	env := serveEnv(t)
	env["MYELIN_OPEN_REGISTRATION"] = "true"
	env["MYELIN_RATE_LIMIT"] = "off"
	if r := run(t, env, "", "create-account", "--user", "root", "--password", "root-pw", "--admin"); r.code != 0 {
		t.Fatalf("create-account: %d %s", r.code, r.stderr)
	}
	p := serve(t, env)
	bobToken := register(t, p.URL, "bob", "bob-pw")
	admin := func(args ...string) result {
		t.Helper()
		return run(t, env, "", append([]string{"admin", "--url", p.URL}, args...)...)
	}
	mustAdmin := func(args ...string) string {
		t.Helper()
		r := admin(args...)
		if r.code != 0 {
			t.Fatalf("myelin admin %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
		}
		return r.stdout
	}

	if out := mustAdmin("status"); !regexpLine(out, `users\s+2`) || !regexpLine(out, `federation queue\s+0 events, 0 EDUs waiting`) {
		t.Fatalf("status:\n%s", out)
	}
	if out := mustAdmin("users", "bo"); !strings.Contains(out, "@bob:bin.test") || strings.Contains(out, "@root:bin.test") {
		t.Fatalf("users bo:\n%s", out)
	}
	var listed struct {
		Total float64 `json:"total"`
	}
	if err := json.Unmarshal([]byte(mustAdmin("--json", "users")), &listed); err != nil || listed.Total != 2 {
		t.Fatalf("users --json: %v %+v", err, listed)
	}

	// reset-password reads the password from standard input.
	r := run(t, env, "new-bob-pw\n", "admin", "--url", p.URL, "reset-password", "@bob:bin.test")
	if r.code != 0 {
		t.Fatalf("reset-password: %d %s", r.code, r.stderr)
	}
	if code, _ := loginRaw(t, p.URL, "bob", "bob-pw"); code != http.StatusForbidden {
		t.Fatalf("the old password after reset: %d", code)
	}
	login(t, p.URL, "bob", "new-bob-pw")

	mustAdmin("make-admin", "@bob:bin.test")
	if out := mustAdmin("user", "@bob:bin.test"); !regexpLine(out, `admin\s+yes`) {
		t.Fatalf("user after make-admin:\n%s", out)
	}
	mustAdmin("make-admin", "@bob:bin.test", "--revoke")
	if r := admin("make-admin", "@nobody:bin.test"); r.code == 0 {
		t.Fatal("make-admin of a user that does not exist succeeded")
	}

	bob := login(t, p.URL, "bob", "new-bob-pw")
	code, body := testserver.Do(t, nil, "POST", p.URL+"/_matrix/client/v3/createRoom", bob, map[string]any{"name": "doomed"})
	if code != http.StatusOK {
		t.Fatalf("createRoom: %d %v", code, body)
	}
	room := body["room_id"].(string)
	if out := mustAdmin("rooms", "doomed"); !strings.Contains(out, room) {
		t.Fatalf("rooms:\n%s", out)
	}
	if out := mustAdmin("delete-room", room, "--purge", "--block"); !strings.Contains(out, "1 local users removed") {
		t.Fatalf("delete-room:\n%s", out)
	}
	if out := mustAdmin("rooms"); strings.Contains(out, room) {
		t.Fatalf("the deleted room is still listed:\n%s", out)
	}

	req, _ := http.NewRequest("POST", p.URL+"/_matrix/media/v3/upload", bytes.NewReader([]byte("bad file")))
	req.Header.Set("Authorization", "Bearer "+bob)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var up struct {
		ContentURI string `json:"content_uri"`
	}
	json.NewDecoder(resp.Body).Decode(&up)
	resp.Body.Close()
	mustAdmin("quarantine-media", up.ContentURI)
	r2 := testserver.Send(t, nil, "GET", p.URL+"/_matrix/client/v1/media/download/"+strings.TrimPrefix(up.ContentURI, "mxc://"), bob, nil)
	if r2.Status == http.StatusOK {
		t.Fatal("quarantined media is still served")
	}
	if r := admin("quarantine-media", "https://example.org/x"); r.code == 0 {
		t.Fatal("a URL that is not mxc:// was accepted")
	}

	mustAdmin("deactivate", "@bob:bin.test")
	if code, _ := loginRaw(t, p.URL, "bob", "new-bob-pw"); code == http.StatusOK {
		t.Fatal("bob logs in after deactivate")
	}
	// Per destination, the back-off and the queue (the counts are
	// checked in internal/admin's TestAdminDestinations, with a server down).
	if out := mustAdmin("federation"); !strings.Contains(out, "QUEUED EVENTS") || !regexpLine(out, `0 destinations`) {
		t.Fatalf("federation:\n%s", out)
	}

	// A non-admin's token is refused by the API; the command says why.
	env2 := map[string]string{}
	for k, v := range env {
		env2[k] = v
	}
	env2["MYELIN_ADMIN_TOKEN"] = bobToken
	if r := run(t, env2, "", "admin", "--url", p.URL, "status"); r.code == 0 {
		t.Fatal("status with a non-admin's (now deactivated) token succeeded")
	}
	// The sessions the command opened for itself are gone: root's only
	// device is the one this login makes.
	root := login(t, p.URL, "root", "root-pw")
	code, body = testserver.Do(t, nil, "GET", p.URL+"/_matrix/client/v3/devices", root, nil)
	if devices, _ := body["devices"].([]any); code != http.StatusOK || len(devices) != 1 {
		t.Fatalf("root's devices after the admin commands: %d %v", code, fmt.Sprint(body))
	}
}

func regexpLine(out, pattern string) bool {
	for _, l := range strings.Split(out, "\n") {
		if ok, _ := regexpMatch(pattern, strings.TrimSpace(l)); ok {
			return true
		}
	}
	return false
}

func regexpMatch(pattern, s string) (bool, error) { return regexp.MatchString("^"+pattern+"$", s) }
