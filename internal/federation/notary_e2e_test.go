package federation_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestNotary asks hs1, as a notary, for hs2's keys and its own: each
// answer must verify with the server's own key and with hs1's; a server
// that cannot be reached is left out.
func TestNotary(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, nil, func(t *testing.T, net *testserver.Network) {
		hs1, hs2 := net.Servers[0], net.Servers[1]
		client := caClient(t, hs1)
		base := "https://" + hs1.Config.Listen.Federation + "/_matrix/key/v2/query"
		query := func(method, url string, body any) []json.RawMessage {
			t.Helper()
			var rd io.Reader
			if body != nil {
				raw, _ := json.Marshal(body)
				rd = bytes.NewReader(raw)
			}
			req, _ := http.NewRequest(method, url, rd)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, raw)
			}
			var out struct {
				ServerKeys []json.RawMessage `json:"server_keys"`
			}
			if err := json.Unmarshal(raw, &out); err != nil || out.ServerKeys == nil {
				t.Fatalf("%s %s: %s: %v", method, url, raw, err)
			}
			return out.ServerKeys
		}
		byServer := func(answers []json.RawMessage) map[string]json.RawMessage {
			out := map[string]json.RawMessage{}
			for _, a := range answers {
				var doc struct {
					ServerName string `json:"server_name"`
				}
				_ = json.Unmarshal(a, &doc)
				out[doc.ServerName] = a
			}
			return out
		}
		verifies := func(what string, answer json.RawMessage, servers ...*testserver.Server) {
			t.Helper()
			for _, s := range servers {
				key := serverKey(t, s)
				if err := gomatrixserverlib.VerifyJSON(s.Config.ServerName, gomatrixserverlib.KeyID(key.ID), key.Public(), answer); err != nil {
					t.Errorf("%s: signature of %s: %v", what, s.Config.ServerName, err)
				}
			}
		}

		got := byServer(query(http.MethodGet, base+"/hs2.test", nil))
		if len(got) != 1 || got["hs2.test"] == nil {
			t.Fatalf("GET hs2.test: %v", got)
		}
		verifies("GET hs2.test", got["hs2.test"], hs2, hs1)
		var doc struct {
			VerifyKeys map[string]any `json:"verify_keys"`
		}
		_ = json.Unmarshal(got["hs2.test"], &doc)
		if doc.VerifyKeys[serverKey(t, hs2).ID] == nil {
			t.Fatalf("hs2's answer lacks its key: %s", got["hs2.test"])
		}

		// Cached now; a request for keys valid further than the cached
		// answer fetches again, and the key ID asked is in the answer.
		later := time.Now().Add(48 * time.Hour).UnixMilli()
		got = byServer(query(http.MethodPost, base, map[string]any{"server_keys": map[string]any{
			"hs2.test":         map[string]any{serverKey(t, hs2).ID: map[string]any{"minimum_valid_until_ts": later}},
			"hs1.test":         map[string]any{},
			"unreachable.test": map[string]any{},
		}}))
		if len(got) != 2 || got["hs1.test"] == nil || got["hs2.test"] == nil {
			t.Fatalf("POST: answers for %v, want hs1.test and hs2.test only", keysOf(got))
		}
		verifies("POST hs2.test", got["hs2.test"], hs2, hs1)
		verifies("POST hs1.test", got["hs1.test"], hs1)

		// A tampered answer does not verify: the checks above are real.
		var m map[string]any
		_ = json.Unmarshal(got["hs2.test"], &m)
		m["valid_until_ts"] = later * 2
		tampered, _ := json.Marshal(m)
		key := serverKey(t, hs1)
		if gomatrixserverlib.VerifyJSON("hs1.test", gomatrixserverlib.KeyID(key.ID), key.Public(), tampered) == nil {
			t.Fatal("a tampered notary answer verified")
		}

		status, body := testserver.Do(t, client, http.MethodPost, base, "", map[string]any{"server_keys": "no"})
		testserver.WantError(t, "POST with a bad body", status, body, http.StatusBadRequest, "M_BAD_JSON")
		if got := query(http.MethodGet, base+"/unreachable.test", nil); len(got) != 0 {
			t.Fatalf("unreachable server: %d answers", len(got))
		}
	})
}

func keysOf(m map[string]json.RawMessage) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
