package httpapi_test

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// FuzzDecodeObject: every JSON request body. What decodes is a valid
// UTF-8 JSON object; what does not is a 400 M_NOT_JSON or M_BAD_JSON.
func FuzzDecodeObject(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1}`, ` {"a":"\u0000"} `, `[]`, `"x"`, `null`, ``, ` `, "{\"a\":\"\xff\"}", `{"a":1e999}`,
		`{"a":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`, `{"a":1}{"b":2}`, `{"a":"\ud800"}`, "\xef\xbb\xbf{}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var v map[string]any
		err := httpapi.DecodeObject(raw, &v)
		if err == nil {
			if !utf8.Valid(raw) || !json.Valid(raw) || v == nil {
				t.Fatalf("accepted %q", raw)
			}
			return
		}
		var merr *mxerr.Error
		if !errors.As(err, &merr) || merr.Status != http.StatusBadRequest || merr.Code != "M_NOT_JSON" && merr.Code != "M_BAD_JSON" {
			t.Fatalf("%q refused with %v", raw, err)
		}
	})
}

// FuzzClientIP: behind a trusted proxy the client address comes from
// X-Forwarded-For, which the client may have started itself. Whatever
// the header holds, the address the server keys rate limits on and
// stores as a device's last seen IP is an IP address.
func FuzzClientIP(f *testing.F) {
	for _, s := range []string{"203.0.113.7", "203.0.113.7, 10.0.0.1", "2001:db8::1", "[2001:db8::1]:443", "", ",", "unknown",
		"\x00", "\xff\xfe", "1.2.3.4\x00", " 1.2.3.4 ", "fe80::1%eth0", strings.Repeat("1", 100)} {
		f.Add(s)
	}
	var got string
	h := httpapi.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = httpapi.ClientIP(r) }),
		httpapi.StackOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), TrustForwardedFor: true})
	f.Fuzz(func(t *testing.T, fwd string) {
		req := httptest.NewRequest(http.MethodGet, "/x", nil)
		req.Header["X-Forwarded-For"] = []string{fwd}
		h.ServeHTTP(httptest.NewRecorder(), req)
		if _, err := netip.ParseAddr(got); err != nil {
			t.Fatalf("X-Forwarded-For %q gave the client address %q", fwd, got)
		}
	})
}

// FuzzAccessToken: the Authorization header and access_token parameter.
// A token found is the header's (trimmed) or the parameter's, never
// anything else.
func FuzzAccessToken(f *testing.F) {
	for _, s := range [][2]string{{"Bearer abc", ""}, {"", "access_token=q"}, {"Bearer", ""}, {"bearer x", ""}, {"Bearer \x00", "access_token=%00"},
		{"Basic x", "access_token=y"}, {"", "access_token=%ff&access_token=b"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, header, query string) {
		req := httptest.NewRequest(http.MethodGet, "/x", nil)
		req.URL.RawQuery = query
		if header != "" {
			req.Header["Authorization"] = []string{header}
		}
		tok, found, err := httpapi.AccessToken(req)
		_, inQuery := req.URL.Query()["access_token"]
		if (err != nil) != (header != "" && inQuery) {
			t.Fatalf("header %q and query %q: error %v", header, query, err)
		}
		if err != nil {
			if tok != "" {
				t.Fatalf("token %q returned with error %v", tok, err)
			}
			return
		}
		if !found && tok != "" {
			t.Fatalf("token %q not found", tok)
		}
		if tok != "" && tok != strings.TrimSpace(strings.TrimPrefix(header, "Bearer ")) && tok != req.URL.Query().Get("access_token") {
			t.Fatalf("token %q from %q and %q", tok, header, query)
		}
	})
}
