package admin

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/myelin-chat/myelin/internal/config"
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

// FuzzJoinServers: any query of POST /_synapse/admin/v1/join/{room} is
// refused with a 400 M_INVALID_PARAM or gives only valid server names.
func FuzzJoinServers(f *testing.F) {
	for _, seed := range []string{"", "server_name=hs1.test", "via=a.b&server_name=c.d:8448", "server_name=bad%20name",
		"via=%00", "via=%ff%fe", "server_name=[::1]:80", "server_name=" + strings.Repeat("a", 300)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, query string) {
		q, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		servers, err := joinServers(q)
		if err != nil {
			if e, ok := mxerr.As(err); !ok || e.Status != 400 || e.Code != "M_INVALID_PARAM" {
				t.Fatalf("refused without a 400 M_INVALID_PARAM: %v", err)
			}
			return
		}
		for _, s := range servers {
			if config.ValidateServerName(s) != nil {
				t.Fatalf("invalid server %q accepted", s)
			}
		}
	})
}
