package remote

import (
	"errors"
	"net/http"
	"testing"
	"unicode/utf8"

	"github.com/myelin-chat/myelin/internal/mxerr"
)

func TestParsePolicyAnswer(t *testing.T) {
	const ps = "policy.test"
	tests := []struct {
		name        string
		status      int
		body        string
		sig         string
		unavailable bool
		wantStatus  int
		wantCode    string
	}{
		{name: "signed", status: 200, body: `{"policy.test":{"ed25519:policy_server":"c2ln"}}`, sig: "c2ln"},
		{name: "signed by another server", status: 200, body: `{"other.test":{"ed25519:policy_server":"c2ln"}}`, wantStatus: 403, wantCode: "M_FORBIDDEN"},
		{name: "other key ID", status: 200, body: `{"policy.test":{"ed25519:auto":"c2ln"}}`, wantStatus: 403, wantCode: "M_FORBIDDEN"},
		{name: "empty", status: 200, body: `{}`, wantStatus: 403, wantCode: "M_FORBIDDEN"},
		{name: "not JSON", status: 200, body: `<html>`, wantStatus: 403, wantCode: "M_FORBIDDEN"},
		{name: "spam", status: 400, body: `{"errcode":"M_FORBIDDEN","error":"spam"}`, wantStatus: 400, wantCode: "M_FORBIDDEN"},
		{name: "unknown room", status: 404, body: `{"errcode":"M_NOT_FOUND","error":"Unknown room"}`, wantStatus: 404, wantCode: "M_NOT_FOUND"},
		{name: "ACL", status: 403, body: `{"errcode":"M_FORBIDDEN"}`, wantStatus: 403, wantCode: "M_FORBIDDEN"},
		{name: "X-Matrix refused", status: 401, body: `{"errcode":"M_UNAUTHORIZED","error":"bad sig"}`, wantStatus: 403, wantCode: "M_UNAUTHORIZED"},
		{name: "token errcode", status: 400, body: `{"errcode":"M_UNKNOWN_TOKEN"}`, wantStatus: 400, wantCode: "M_FORBIDDEN"},
		{name: "no errcode", status: 400, body: `nope`, wantStatus: 400, wantCode: "M_FORBIDDEN"},
		{name: "rate limited", status: 429, body: `{"errcode":"M_LIMIT_EXCEEDED"}`, unavailable: true},
		{name: "down", status: 503, body: ``, unavailable: true},
		{name: "redirect", status: 302, body: ``, unavailable: true},
	}
	for _, tt := range tests {
		sig, err := parsePolicyAnswer(ps, tt.status, []byte(tt.body))
		switch {
		case tt.sig != "":
			if err != nil || sig != tt.sig {
				t.Errorf("%s: %q, %v; want %q", tt.name, sig, err, tt.sig)
			}
		case tt.unavailable:
			if !errors.Is(err, ErrPolicyUnavailable) {
				t.Errorf("%s: %v, want unavailable", tt.name, err)
			}
		default:
			e, ok := mxerr.As(err)
			if !ok || e.Status != tt.wantStatus || e.Code != tt.wantCode || e.Message == "" {
				t.Errorf("%s: %v, want %d %s", tt.name, err, tt.wantStatus, tt.wantCode)
			}
		}
	}
}

// FuzzParsePolicyAnswer: a policy server's answer to /sign is another
// server's; whatever it says is a signature, a refusal a client may be
// shown (a Matrix error with a 4xx status, bounded valid UTF-8), or
// unavailability, never a panic.
func FuzzParsePolicyAnswer(f *testing.F) {
	for _, s := range []struct {
		status int
		body   string
	}{
		{200, `{"policy.test":{"ed25519:policy_server":"c2ln"}}`}, {200, `{"policy.test":{"ed25519:policy_server":1}}`},
		{200, `{"policy.test":null}`}, {200, `[]`}, {400, `{"errcode":"M_FORBIDDEN","error":"spam"}`},
		{404, `{"errcode":"M_UNRECOGNIZED"}`}, {401, `{}`}, {500, `x`}, {429, ``}, {418, `{"error":"\u00e9\u00e9"}`},
	} {
		f.Add(s.status, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		sig, err := parsePolicyAnswer("policy.test", status, body)
		if err == nil {
			if sig == "" || status != http.StatusOK {
				t.Fatalf("signature %q from status %d", sig, status)
			}
			return
		}
		if errors.Is(err, ErrPolicyUnavailable) {
			return
		}
		e, ok := mxerr.As(err)
		if !ok {
			t.Fatalf("neither refusal nor unavailability: %v", err)
		}
		if e.Status < 400 || e.Status > 499 || e.Code == "" || e.Message == "" || len(e.Message) > maxPolicyErrorBytes {
			t.Fatalf("refusal %d %q %q", e.Status, e.Code, e.Message)
		}
		if e.Status == http.StatusUnauthorized || !utf8.ValidString(e.Message) {
			t.Fatalf("refusal %d %q", e.Status, e.Message)
		}
	})
}
