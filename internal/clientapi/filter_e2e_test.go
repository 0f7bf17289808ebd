package clientapi_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestFilterIDsChecked: a filter naming an invalid room or user ID is
// refused at upload and inline in /sync (400 M_BAD_JSON, as Synapse's
// check_valid_filter), wherever the IDs sit; valid ones, room IDs of
// version 12 without a server name included, are accepted.
func TestFilterIDsChecked(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw")
		upload := s.URL + "/_matrix/client/v3/user/" + url.PathEscape(alice.UserID.String()) + "/filter"
		for what, body := range map[string]string{
			"room not a room ID":     `{"room":{"rooms":["general"]}}`,
			"not_rooms":              `{"room":{"not_rooms":["#alias:hs1.test"]}}`,
			"timeline rooms":         `{"room":{"timeline":{"rooms":["!"]}}}`,
			"state not_rooms":        `{"room":{"state":{"not_rooms":[""]}}}`,
			"senders not a user ID":  `{"room":{"timeline":{"senders":["bob"]}}}`,
			"presence not_senders":   `{"presence":{"not_senders":["@nodomain"]}}`,
			"account_data senders":   `{"account_data":{"senders":["!room:hs1.test"]}}`,
			"ephemeral senders, NUL": `{"room":{"ephemeral":{"senders":["@a\u0000:hs1.test"]}}}`,
		} {
			wireErr(t, what, testserver.Send(t, nil, http.MethodPost, upload, alice.AccessToken, body), http.StatusBadRequest, "M_BAD_JSON")
			r := testserver.Send(t, nil, http.MethodGet, s.URL+"/_matrix/client/v3/sync?filter="+url.QueryEscape(body), alice.AccessToken, nil)
			wireErr(t, what+" inline", r, http.StatusBadRequest, "M_BAD_JSON")
		}
		good := `{"room":{"rooms":["!abc:hs1.test","!R4nd0mV12Id"],"timeline":{"senders":["@bob:hs2.test"],"not_rooms":["!x:hs1.test"]}},"presence":{"not_senders":["@carol:hs1.test"]}}`
		wireOK(t, "valid IDs", testserver.Send(t, nil, http.MethodPost, upload, alice.AccessToken, good))
		wireOK(t, "valid IDs inline", testserver.Send(t, nil, http.MethodGet, s.URL+"/_matrix/client/v3/sync?filter="+url.QueryEscape(good), alice.AccessToken, nil))
	})
}
