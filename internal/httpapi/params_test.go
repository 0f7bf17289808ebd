package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/ident"
)

// TestStringsAtTheBoundary: path parameters and query values that the
// store could not hold are refused before any handler runs, and a string
// the store refuses later is the client's error, not a 500.
func TestStringsAtTheBoundary(t *testing.T) {
	rt := httpapi.NewRouter(httpapi.Deps{Logger: quiet})
	var reached bool
	rt.Add(httpapi.Route{Method: http.MethodGet, Path: "/rooms/{roomId}/state/{eventType}/{stateKey...}", Handler: func(r *http.Request, _ *httpapi.Caller) (any, error) {
		reached = true
		if r.URL.Query().Get("store") != "" {
			return nil, fmt.Errorf("store: argument 1: %w", ident.CheckText("a\x00"))
		}
		return map[string]any{}, nil
	}})
	for _, c := range []struct {
		path   string
		status int
		code   string
	}{
		{"/rooms/!a:hs/state/m.x/key", 200, ""},
		{"/rooms/!a:hs/state/m.x/", 200, ""},
		{"/rooms/!a%F0%9F%98%80:hs/state/m.x/%E2%80%AE", 200, ""},
		{"/rooms/!a%00:hs/state/m.x/", 400, "M_INVALID_PARAM"},
		{"/rooms/!a:hs/state/m.%FF/", 400, "M_INVALID_PARAM"},
		{"/rooms/!a:hs/state/m.x/a/b%C0%80", 400, "M_INVALID_PARAM"},
		{"/rooms/!a:hs/state/m.x/%ED%A0%80", 400, "M_INVALID_PARAM"},
		{"/rooms/!a:hs/state/m.x/" + strings.Repeat("k", httpapi.MaxParamBytes), 200, ""},
		{"/rooms/!a:hs/state/m.x/" + strings.Repeat("k", httpapi.MaxParamBytes+1), 413, "M_TOO_LARGE"},
		{"/rooms/!a:hs/state/m.x/?from=%00", 400, "M_INVALID_PARAM"},
		{"/rooms/!a:hs/state/m.x/?from=%FF", 400, "M_INVALID_PARAM"},
		{"/rooms/!a:hs/state/m.x/?%00=x", 400, "M_INVALID_PARAM"},
		{"/rooms/!a:hs/state/m.x/?from=" + strings.Repeat("f", 5000), 200, ""},
		{"/rooms/!a:hs/state/m.x/?store=1", 400, "M_INVALID_PARAM"},
	} {
		reached = false
		w := httptest.NewRecorder()
		rt.ServeHTTP(w, httptest.NewRequest(http.MethodGet, c.path, nil))
		var body map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &body)
		if w.Code != c.status || c.code != "" && body["errcode"] != c.code {
			t.Errorf("%.80s: %d %s, want %d %s", c.path, w.Code, w.Body, c.status, c.code)
		}
		if reached != (c.status == 200 || strings.Contains(c.path, "store=")) {
			t.Errorf("%.80s: handler reached = %v", c.path, reached)
		}
	}
}
