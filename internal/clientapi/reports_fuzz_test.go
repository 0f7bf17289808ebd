package clientapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/myelin-chat/myelin/internal/mxerr"
)

// FuzzReportBody: a report's body is either accepted with the reason it
// holds (a JSON string, or absent where optional) or refused with a 4xx
// Matrix error; whatever else it carries (score, ...) is ignored.
func FuzzReportBody(f *testing.F) {
	for _, seed := range []string{`{}`, `{"reason":"spam"}`, `{"reason":"spam","score":-100}`, `{"score":"x"}`,
		`{"reason":null}`, `{"reason":5}`, `{"reason":"\u0000"}`, `[]`, `nul`, `{"reason":"a","reason":7}`} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, required bool) {
		r := httptest.NewRequest(http.MethodPost, "/report", bytes.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		reason, err := reportBody(r, required)
		if err != nil {
			var merr *mxerr.Error
			if !errors.As(err, &merr) || merr.Status < 400 || merr.Status >= 500 {
				t.Fatalf("body %q: error %v, want a 4xx Matrix error", body, err)
			}
			return
		}
		var parsed map[string]json.RawMessage
		if json.Unmarshal(body, &parsed) != nil {
			t.Fatalf("body %q is not a JSON object but was accepted", body)
		}
		raw, ok := parsed["reason"]
		if !ok || string(raw) == "null" {
			if required || reason != "" {
				t.Fatalf("body %q without a reason: accepted %q (required %v)", body, reason, required)
			}
			return
		}
		var want string
		if json.Unmarshal(raw, &want) != nil || want != reason {
			t.Fatalf("body %q: reason %q, want %q", body, reason, want)
		}
	})
}
