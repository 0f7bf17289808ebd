package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// scrape reads the metrics listener's exposition.
func scrape(t *testing.T, s *testserver.Server) string {
	t.Helper()
	resp, err := http.Get("http://" + s.Addr("metrics") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	return string(raw)
}

// value is the first sample of series (name plus labels, as exposed).
func value(exposition, series string) (float64, bool) {
	for _, line := range strings.Split(exposition, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// The server's own metrics count what happens, and every metric the
// Grafana dashboard in contrib/ queries is one the server exposes.
func TestServerMetricsAndDashboard(t *testing.T) {
	testserver.EachEngine(t, func(c *config.Config) { c.Listen.Metrics = "127.0.0.1:0" }, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw")
		code, body := s.Do(t, "POST", "/_matrix/client/v3/createRoom", alice.AccessToken, map[string]any{})
		testserver.WantStatus(t, "createRoom", code, body, http.StatusOK)
		room := body["room_id"].(string)
		for i := range 3 {
			code, body = s.Do(t, "PUT", fmt.Sprintf("/_matrix/client/v3/rooms/%s/send/m.room.message/m%d", room, i), alice.AccessToken,
				map[string]any{"msgtype": "m.text", "body": "hi"})
			testserver.WantStatus(t, "send", code, body, http.StatusOK)
		}
		code, body = s.Do(t, "GET", "/_matrix/client/v3/sync?timeout=0", alice.AccessToken, nil)
		testserver.WantStatus(t, "sync", code, body, http.StatusOK)
		since := body["next_batch"].(string)
		// One long-poll waits while the metrics are read.
		done := make(chan struct{})
		go func() {
			defer close(done)
			req, _ := http.NewRequest("GET", s.URL+"/_matrix/client/v3/sync?timeout=5000&since="+since, nil)
			req.Header.Set("Authorization", "Bearer "+alice.AccessToken)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()

		var exp string
		for deadline := time.Now().Add(4 * time.Second); ; {
			exp = scrape(t, s)
			if v, _ := value(exp, "myelin_sync_long_polls"); v == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("myelin_sync_long_polls never showed the waiting /sync:\n%s", grep(exp, "myelin_sync"))
			}
			time.Sleep(20 * time.Millisecond)
		}
		// createRoom's state events and the three messages.
		if v, _ := value(exp, `myelin_events_persisted_total{origin="local"}`); v < 8 {
			t.Errorf("local events persisted = %v, want at least 8", v)
		}
		for series, want := range map[string]float64{"myelin_users": 1, "myelin_rooms": 1, `myelin_federation_queued{kind="pdu"}`: 0} {
			if v, ok := value(exp, series); !ok || v != want {
				t.Errorf("%s = %v (%v), want %v", series, v, ok, want)
			}
		}
		for _, worker := range []string{"push", "search"} {
			if _, ok := value(exp, `myelin_background_backlog{worker="`+worker+`"}`); !ok {
				t.Errorf("no backlog gauge for the %s worker", worker)
			}
		}
		if !strings.Contains(exp, "myelin_db_connections_in_use{pool=") {
			t.Error("no database pool metrics")
		}

		raw, err := os.ReadFile("../../contrib/grafana/myelin-dashboard.json")
		if err != nil {
			t.Fatal(err)
		}
		var dash struct {
			Panels []struct {
				Title   string `json:"title"`
				Targets []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(raw, &dash); err != nil {
			t.Fatalf("dashboard: %v", err)
		}
		name := regexp.MustCompile(`\b(?:myelin|process|go)_[a-z_]+`)
		seen := 0
		for _, p := range dash.Panels {
			for _, target := range p.Targets {
				for _, m := range name.FindAllString(target.Expr, -1) {
					seen++
					if !regexp.MustCompile(`(?m)^` + m + `[{ ]`).MatchString(exp) {
						t.Errorf("panel %q queries %s, which the server does not expose", p.Title, m)
					}
				}
			}
		}
		if seen < 10 {
			t.Fatalf("the dashboard names only %d metrics", seen)
		}
		checkMetricsDocumented(t, exp)
		<-done
	})
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// checkMetricsDocumented compares docs/operations.md's table of metrics
// with the server's own (myelin_*) metrics: each exposed one is listed,
// and each listed one is exposed.
func checkMetricsDocumented(t *testing.T, exp string) {
	t.Helper()
	raw, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	start := strings.Index(doc, "\n## Metrics\n")
	if start < 0 {
		t.Fatal("docs/operations.md has no Metrics section")
	}
	section := doc[start+1:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	listed := map[string]bool{}
	for _, m := range regexp.MustCompile("`(myelin_[a-z_]+)").FindAllStringSubmatch(section, -1) {
		listed[m[1]] = true
	}
	exposed := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^# TYPE (myelin_[a-z_]+) `).FindAllStringSubmatch(exp, -1) {
		exposed[m[1]] = true
	}
	if len(exposed) < 10 {
		t.Fatalf("only %d myelin_ metrics exposed", len(exposed))
	}
	for name := range exposed {
		if !listed[name] {
			t.Errorf("%s is exposed but not listed in docs/operations.md", name)
		}
	}
	for name := range listed {
		if !exposed[name] {
			t.Errorf("docs/operations.md lists %s, which the server does not expose", name)
		}
	}
}
