package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// TestAdminActionsLogged: every admin request that may change something
// is logged with who made it, what and how it ended; reads are not, and
// a non-admin's attempt is logged as refused.
func TestAdminActionsLogged(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	callers := map[string]*httpapi.Caller{
		"admin": {UserID: "@root:hs", Localpart: "root", IsAdmin: true},
		"user":  {UserID: "@bob:hs", Localpart: "bob"},
	}
	rt := httpapi.NewRouter(httpapi.Deps{Logger: logger, Authenticate: func(_ context.Context, token string, _ *http.Request, _ bool) (*httpapi.Caller, error) {
		if c, ok := callers[token]; ok {
			return c, nil
		}
		return nil, mxerr.UnknownToken("no")
	}})
	ok := func(*http.Request, *httpapi.Caller) (any, error) { return map[string]any{}, nil }
	fail := func(*http.Request, *httpapi.Caller) (any, error) { return nil, mxerr.NotFound("User not found") }
	rt.Add(httpapi.Route{Method: http.MethodGet, Path: "/x/{id}", Auth: httpapi.AuthRequired, Handler: adminOnly(ok)})
	rt.Add(httpapi.Route{Method: http.MethodPost, Path: "/x/{id}", Auth: httpapi.AuthRequired, Handler: adminOnly(ok)})
	rt.Add(httpapi.Route{Method: http.MethodDelete, Path: "/x/{id}", Auth: httpapi.AuthRequired, Handler: adminOnly(fail)})
	h := httpapi.Wrap(rt, httpapi.StackOptions{Logger: logger})

	audit := func(method, token string) []map[string]any {
		t.Helper()
		buf.Reset()
		req := httptest.NewRequest(method, "/x/42", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		h.ServeHTTP(httptest.NewRecorder(), req)
		var out []map[string]any
		for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("log line %q: %v", line, err)
			}
			if m["msg"] == "admin action" {
				out = append(out, m)
			}
		}
		return out
	}
	if got := audit("GET", "admin"); len(got) != 0 {
		t.Fatalf("a read was logged as an action: %v", got)
	}
	want := func(what string, got []map[string]any, admin, method, outcome string) {
		t.Helper()
		if len(got) != 1 || got[0]["admin"] != admin || got[0]["method"] != method || got[0]["path"] != "/x/42" || got[0]["outcome"] != outcome {
			t.Fatalf("%s: logged %v, want one line by %s, %s /x/42, %s", what, got, admin, method, outcome)
		}
	}
	want("admin POST", audit("POST", "admin"), "@root:hs", "POST", "ok")
	want("admin DELETE failing", audit("DELETE", "admin"), "@root:hs", "DELETE", "M_NOT_FOUND")
	want("non-admin POST", audit("POST", "user"), "@bob:hs", "POST", "M_FORBIDDEN")
}
