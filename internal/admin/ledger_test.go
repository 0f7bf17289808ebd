package admin_test

import (
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// ledgerRow is one row of docs/compliance.md's "Synapse admin API
// endpoint ledger": its paths (under /_synapse/admin), methods, and
// whether it says served.
type ledgerRow struct {
	paths, methods []string
	served         bool
	line           string
}

// readLedger parses the ledger's table.
func readLedger(t *testing.T) []ledgerRow {
	t.Helper()
	raw, err := os.ReadFile("../../docs/compliance.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	start := strings.Index(doc, "## Synapse admin API endpoint ledger")
	if start < 0 {
		t.Fatal("no ledger section in docs/compliance.md")
	}
	section := doc[start+3:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	code := regexp.MustCompile("`([^`]+)`")
	var rows []ledgerRow
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cols := strings.Split(strings.Trim(line, "| "), " | ")
		if len(cols) != 4 {
			t.Fatalf("ledger row without 4 columns: %s", line)
		}
		row := ledgerRow{line: line, served: strings.HasPrefix(cols[3], "served")}
		if !row.served && !strings.HasPrefix(cols[3], "not served") {
			t.Fatalf("ledger row neither served nor not served: %s", line)
		}
		for _, m := range code.FindAllStringSubmatch(cols[0], -1) {
			row.paths = append(row.paths, m[1])
		}
		row.methods = strings.Split(cols[1], ", ")
		rows = append(rows, row)
	}
	return rows
}

// TestAdminLedgerServed walks the ledger: every method of every path of
// a row that says served must be routed (an admin's request is not
// answered 404 or 405 M_UNRECOGNIZED), and every one of a row that says
// not served must not be.
func TestAdminLedgerServed(t *testing.T) {
	rows := readLedger(t)
	servedRows := 0
	for _, r := range rows {
		if r.served {
			servedRows++
		}
	}
	if servedRows < 60 || len(rows)-servedRows < 3 {
		t.Fatalf("the ledger parsed into %d rows, %d served: the table's format changed", len(rows), servedRows)
	}
	s := testserver.Start(t, "", withSecret)
	admin := s.RegisterAdmin("root", "root password").AccessToken
	server := s.Config.ServerName
	values := map[string]string{
		"userId": "@ledger:" + server, "roomId": "!ledger:" + server, "roomIdOrAlias": "!ledger:" + server,
		"eventId": "$ledger", "serverName": server, "origin": server, "destination": "ledger.test",
	}
	param := regexp.MustCompile(`\{([^}]+)\}`)
	for _, r := range rows {
		for _, p := range r.paths {
			path := "/_synapse/admin" + param.ReplaceAllStringFunc(p, func(m string) string {
				v, ok := values[m[1:len(m)-1]]
				if !ok {
					v = "ledger"
				}
				return url.PathEscape(v)
			})
			for _, method := range r.methods {
				status, body := s.Do(t, method, path, admin, map[string]any{})
				routed := !((status == http.StatusNotFound || status == http.StatusMethodNotAllowed) && body["errcode"] == "M_UNRECOGNIZED")
				if routed != r.served {
					t.Errorf("%s %s answers %d %v, but the ledger says: %s", method, path, status, body, r.line)
				}
			}
		}
	}
}
