package admin

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// FuzzUserRedact: any body of POST /_synapse/admin/v1/user/{userId}/redact
// is refused with a 400 Matrix error or read into a request the job can
// run: room IDs only, a limit not below zero (0 is the default).
func FuzzUserRedact(f *testing.F) {
	for _, seed := range []string{
		`{"rooms":[]}`, `{"rooms":["!a:b"],"reason":"spam","limit":10,"use_admin":true}`, `{"rooms":null}`, `{}`,
		`{"rooms":"x"}`, `{"rooms":["x"]}`, `{"rooms":[],"limit":-1}`, `{"rooms":[],"limit":1e99}`, `{"rooms":[],"reason":null}`, `[`,
	} {
		f.Add(seed, "@bob:example.org")
	}
	f.Fuzz(func(t *testing.T, body, userID string) {
		r := httptest.NewRequest("POST", "/x", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.SetPathValue("userId", userID)
		req, err := redactRequest(r, &httpapi.Caller{UserID: "@root:example.org", IsAdmin: true})
		if err != nil {
			if e, ok := mxerr.As(err); !ok || e.Status != 400 {
				t.Fatalf("refused without a 400 Matrix error: %v", err)
			}
			return
		}
		if req.Limit < 0 || req.Rooms == nil || !strings.HasPrefix(req.UserID, "@") {
			t.Fatalf("accepted: %+v", req)
		}
		for _, id := range req.Rooms {
			if !strings.HasPrefix(id, "!") {
				t.Fatalf("room %q accepted", id)
			}
		}
	})
}
