package testserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
)

// Response is an HTTP answer as Send read it.
type Response struct {
	Status int
	Header http.Header
	// Raw is the body as it came.
	Raw []byte
	// JSON is the body decoded, when it is a JSON object; nil otherwise.
	JSON map[string]any
}

// Send makes one request straight over net/http, with client (nil:
// http.DefaultClient), and reads the whole answer. body is nil (no body),
// a []byte or string sent as is (for malformed JSON), or any other value,
// marshalled to JSON; any body goes with Content-Type: application/json.
// A non-empty token goes in the Authorization header; headers are further
// name/value pairs, set last. An answer with a JSON Content-Type or
// starting with '{' must be a JSON object, else the test fails.
func Send(t testing.TB, client *http.Client, method, url, token string, body any, headers ...string) Response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("%s %s: marshal: %v", method, url, err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, rd)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	if client == nil {
		client = http.DefaultClient
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	out := Response{Status: res.StatusCode, Header: res.Header, Raw: raw}
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) > 0 && (trimmed[0] == '{' || strings.HasPrefix(res.Header.Get("Content-Type"), "application/json")) {
		if err := json.Unmarshal(trimmed, &out.JSON); err != nil {
			t.Fatalf("%s %s: status %d, body is not a JSON object: %v: %q", method, url, res.StatusCode, err, raw)
		}
	}
	return out
}

// Do is Send for an answer that must be a JSON object: it returns the
// status and the decoded object.
func Do(t testing.TB, client *http.Client, method, url, token string, body any) (int, map[string]any) {
	t.Helper()
	r := Send(t, client, method, url, token, body)
	if r.JSON == nil {
		t.Fatalf("%s %s: status %d, body is not a JSON object: %q", method, url, r.Status, r.Raw)
	}
	return r.Status, r.JSON
}

// Do is the package's Do against this server's client API: path is
// appended to URL.
func (s *Server) Do(t testing.TB, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	return Do(t, nil, method, s.URL+path, token, body)
}

// WantStatus fails the test unless a raw answer has the status; its
// errcode is not looked at.
func WantStatus(t testing.TB, what string, status int, body map[string]any, wantStatus int) {
	t.Helper()
	if status != wantStatus {
		t.Fatalf("%s: status %d, want %d; body %v", what, status, wantStatus, body)
	}
}

// WantError fails the test unless a raw answer has the status and the
// errcode; wantCode "" requires that there is no errcode at all.
func WantError(t testing.TB, what string, status int, body map[string]any, wantStatus int, wantCode string) {
	t.Helper()
	WantStatus(t, what, status, body, wantStatus)
	if code, has := body["errcode"]; (wantCode == "" && has) || (wantCode != "" && code != wantCode) {
		t.Fatalf("%s: errcode %v, want %q; body %v", what, code, wantCode, body)
	}
}

// WantHTTPError fails the test unless err is a mautrix.HTTPError for a
// Matrix error with the status and the errcode.
func WantHTTPError(t testing.TB, what string, err error, status int, code string) {
	t.Helper()
	var httpErr mautrix.HTTPError
	if !errors.As(err, &httpErr) || httpErr.Response == nil || httpErr.RespError == nil {
		t.Fatalf("%s: got %v, want %d %s", what, err, status, code)
	}
	if httpErr.Response.StatusCode != status || httpErr.RespError.ErrCode != code {
		t.Fatalf("%s: got %d %s (%s), want %d %s", what, httpErr.Response.StatusCode, httpErr.RespError.ErrCode, httpErr.RespError.Err, status, code)
	}
}
