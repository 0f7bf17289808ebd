package federation_test

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/signing"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// readRoom is a room on hs1 with history visible to joined members only:
// a message before hs2's user joins, the join, and two after.
type readRoom struct {
	net                *testserver.Network
	hs1, hs2, hs3      *testserver.Server
	alice              *mautrix.Client
	roomID             string
	before, join       string
	after1, after2     string
	createID, aliceMem string
}

func newReadRoom(t *testing.T, net *testserver.Network) *readRoom {
	t.Helper()
	ctx := context.Background()
	r := &readRoom{net: net, hs1: net.Servers[0], hs2: net.Servers[1], hs3: net.Servers[2]}
	r.alice = r.hs1.Register("alice", "password")
	created, err := r.alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat",
		InitialState: []*event.Event{{Type: event.StateHistoryVisibility, Content: event.Content{Raw: map[string]any{"history_visibility": "joined"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	r.roomID = created.RoomID.String()
	r.before = r.send(t, "before")
	r.join = remoteJoin(t, r.hs2, r.hs1, r.roomID, "bob").EventID()
	r.after1 = r.send(t, "after 1")
	r.after2 = r.send(t, "after 2")
	state, err := r.alice.State(ctx, created.RoomID)
	if err != nil {
		t.Fatal(err)
	}
	r.createID = state[event.StateCreate][""].ID.String()
	r.aliceMem = state[event.StateMember][r.alice.UserID.String()].ID.String()
	return r
}

func (r *readRoom) send(t *testing.T, body string) string {
	t.Helper()
	resp, err := r.alice.SendText(context.Background(), id.RoomID(r.roomID), body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.EventID.String()
}

// get sends a signed request from a server to hs1.
func (r *readRoom) get(t *testing.T, from *testserver.Server, path string) (int, map[string]any) {
	t.Helper()
	return r.net.SignedRequest(t, from, r.hs1, http.MethodGet, path, nil)
}

// path is a federation v1 path; query values must come escaped.
func (r *readRoom) path(format string, args ...any) string {
	return "/_matrix/federation/v1" + fmt.Sprintf(format, args...)
}

// pduBodies lists, per PDU of a list, its content's body ("-" when the
// content has none, as in a redacted message).
func pduBodies(t *testing.T, pdus any) []string {
	t.Helper()
	list, ok := pdus.([]any)
	if !ok {
		t.Fatalf("pdus %v is not a list", pdus)
	}
	var out []string
	for _, p := range list {
		content, _ := p.(map[string]any)["content"].(map[string]any)
		if body, ok := content["body"].(string); ok {
			out = append(out, body)
		} else {
			out = append(out, "-")
		}
	}
	return out
}

func stringList(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// TestFederationEventEndpoints reads a room's events as another server
// does, and checks what is refused: servers outside the room, requests
// not signed by their origin, servers the room's ACL denies, and the
// content of events from before the server's user joined a room whose
// history is for joined members.
func TestFederationEventEndpoints(t *testing.T) {
	testserver.EachEngineNetwork(t, 3, nil, func(t *testing.T, net *testserver.Network) {
		r := newReadRoom(t, net)
		t.Run("event", func(t *testing.T) { testGetEvent(t, r) })
		t.Run("state", func(t *testing.T) { testState(t, r) })
		t.Run("event_auth", func(t *testing.T) { testEventAuth(t, r) })
		t.Run("backfill", func(t *testing.T) { testBackfill(t, r) })
		t.Run("get_missing_events", func(t *testing.T) { testMissingEvents(t, r) })
		t.Run("timestamp_to_event", func(t *testing.T) { testTimestampToEvent(t, r) })
		t.Run("refusals", func(t *testing.T) { testReadRefusals(t, r) })
		// Last: the ACL shuts hs2 out of the room.
		t.Run("acl", func(t *testing.T) { testReadACL(t, r) })
	})
}

func testGetEvent(t *testing.T, r *readRoom) {
	status, body := r.get(t, r.hs2, r.path("/event/%s", r.after1))
	testserver.WantStatus(t, "event", status, body, http.StatusOK)
	if body["origin"] != "hs1.test" || body["origin_server_ts"] == nil {
		t.Fatalf("event: origin %v, origin_server_ts %v", body["origin"], body["origin_server_ts"])
	}
	if got := pduBodies(t, body["pdus"]); !slices.Equal(got, []string{"after 1"}) {
		t.Fatalf("event: bodies %v", got)
	}
	pdu := body["pdus"].([]any)[0].(map[string]any)
	if _, ok := pdu["signatures"].(map[string]any)["hs1.test"]; !ok || pdu["prev_events"] == nil || pdu["auth_events"] == nil {
		t.Fatalf("event is not served as a PDU: %v", pdu)
	}
	// Before bob joined, the history was for joined members only: hs2
	// gets the event redacted, as Synapse serves it.
	status, body = r.get(t, r.hs2, r.path("/event/%s", r.before))
	testserver.WantStatus(t, "event before join", status, body, http.StatusOK)
	if got := pduBodies(t, body["pdus"]); !slices.Equal(got, []string{"-"}) {
		t.Fatalf("event before join: bodies %v, want it redacted", got)
	}
	status, body = r.get(t, r.hs2, r.path("/event/%s", "$unknown"))
	testserver.WantError(t, "unknown event", status, body, http.StatusNotFound, "M_NOT_FOUND")
}

func testState(t *testing.T, r *readRoom) {
	status, body := r.get(t, r.hs2, r.path("/state_ids/%s?event_id=%s", r.roomID, url.QueryEscape(r.after1)))
	testserver.WantStatus(t, "state_ids", status, body, http.StatusOK)
	ids := stringList(body["pdu_ids"])
	// The state before after1: bob's join is in it, after1 itself is not.
	if !slices.Contains(ids, r.join) || !slices.Contains(ids, r.createID) || slices.Contains(ids, r.after1) {
		t.Fatalf("state_ids: %v", ids)
	}
	chain := stringList(body["auth_chain_ids"])
	if !slices.Contains(chain, r.aliceMem) {
		t.Fatalf("auth_chain_ids %v lacks alice's join", chain)
	}
	// The state at the join is the state before it.
	status, body = r.get(t, r.hs2, r.path("/state_ids/%s?event_id=%s", r.roomID, url.QueryEscape(r.join)))
	testserver.WantStatus(t, "state_ids at join", status, body, http.StatusOK)
	if before := stringList(body["pdu_ids"]); slices.Contains(before, r.join) || len(before) != len(ids)-1 {
		t.Fatalf("state_ids at join: %v (after: %v)", before, ids)
	}

	status, body = r.get(t, r.hs2, r.path("/state/%s?event_id=%s", r.roomID, url.QueryEscape(r.after1)))
	testserver.WantStatus(t, "state", status, body, http.StatusOK)
	pdus, _ := body["pdus"].([]any)
	authChain, _ := body["auth_chain"].([]any)
	if len(pdus) != len(ids) || len(authChain) != len(chain) {
		t.Fatalf("state: %d pdus and %d auth events, state_ids had %d and %d", len(pdus), len(authChain), len(ids), len(chain))
	}
	types := map[string]bool{}
	for _, p := range pdus {
		types[p.(map[string]any)["type"].(string)] = true
	}
	for _, typ := range []string{"m.room.create", "m.room.power_levels", "m.room.join_rules", "m.room.member", "m.room.history_visibility"} {
		if !types[typ] {
			t.Errorf("state lacks %s: %v", typ, types)
		}
	}

	status, body = r.get(t, r.hs2, r.path("/state_ids/%s", r.roomID))
	testserver.WantError(t, "state_ids without event_id", status, body, http.StatusBadRequest, "M_MISSING_PARAM")
	status, body = r.get(t, r.hs2, r.path("/state_ids/%s?event_id=%s", r.roomID, url.QueryEscape("$unknown")))
	testserver.WantError(t, "state_ids of an unknown event", status, body, http.StatusNotFound, "M_NOT_FOUND")
}

func testEventAuth(t *testing.T, r *readRoom) {
	status, body := r.get(t, r.hs2, r.path("/event_auth/%s/%s", r.roomID, r.after1))
	testserver.WantStatus(t, "event_auth", status, body, http.StatusOK)
	chain, _ := body["auth_chain"].([]any)
	types := map[string]bool{}
	for _, p := range chain {
		types[p.(map[string]any)["type"].(string)] = true
	}
	// A message is authorised by the power levels and its sender's join,
	// which go back to the create event.
	for _, typ := range []string{"m.room.create", "m.room.power_levels", "m.room.member"} {
		if !types[typ] {
			t.Errorf("auth chain lacks %s: %v", typ, types)
		}
	}
	if types["m.room.message"] || types["m.room.history_visibility"] {
		t.Errorf("auth chain has events that authorise nothing: %v", types)
	}
}

func testBackfill(t *testing.T, r *readRoom) {
	status, body := r.get(t, r.hs2, r.path("/backfill/%s?v=%s&limit=3", r.roomID, url.QueryEscape(r.after2)))
	testserver.WantStatus(t, "backfill", status, body, http.StatusOK)
	// Deepest first, the event named included; the join has no body.
	if got := pduBodies(t, body["pdus"]); !slices.Equal(got, []string{"after 2", "after 1", "-"}) {
		t.Fatalf("backfill: bodies %v", got)
	}
	if body["origin"] != "hs1.test" {
		t.Fatalf("backfill: origin %v", body["origin"])
	}
	// All of it: the message from before the join comes redacted.
	status, body = r.get(t, r.hs2, r.path("/backfill/%s?v=%s&limit=1000", r.roomID, url.QueryEscape(r.after2)))
	testserver.WantStatus(t, "backfill all", status, body, http.StatusOK)
	got := pduBodies(t, body["pdus"])
	if len(got) < 8 || got[len(got)-1] != "-" || slices.Contains(got, "before") {
		t.Fatalf("backfill all: bodies %v", got)
	}
	list := body["pdus"].([]any)
	if last := list[len(list)-1].(map[string]any); last["type"] != "m.room.create" {
		t.Fatalf("backfill all ends with %v, want the create event", last["type"])
	}
	status, body = r.get(t, r.hs2, r.path("/backfill/%s?v=%s", r.roomID, url.QueryEscape(r.after2)))
	testserver.WantError(t, "backfill without limit", status, body, http.StatusBadRequest, "M_MISSING_PARAM")
}

func testMissingEvents(t *testing.T, r *readRoom) {
	ask := func(earliest, latest []string, limit int) []string {
		t.Helper()
		req := map[string]any{"earliest_events": earliest, "latest_events": latest, "min_depth": 0}
		if limit > 0 {
			req["limit"] = limit
		}
		status, body := r.net.SignedRequest(t, r.hs2, r.hs1, http.MethodPost, r.path("/get_missing_events/%s", r.roomID), req)
		testserver.WantStatus(t, "get_missing_events", status, body, http.StatusOK)
		return pduBodies(t, body["events"])
	}
	// Oldest first, the latest events left out, stopping at the earliest.
	if got := ask([]string{r.before}, []string{r.after2}, 0); !slices.Equal(got, []string{"-", "after 1"}) {
		t.Fatalf("get_missing_events: %v, want the join and after 1", got)
	}
	if got := ask([]string{r.join}, []string{r.after2}, 0); !slices.Equal(got, []string{"after 1"}) {
		t.Fatalf("get_missing_events from the join: %v", got)
	}
	if got := ask(nil, []string{r.after2}, 2); !slices.Equal(got, []string{"-", "after 1"}) {
		t.Fatalf("get_missing_events limit 2: %v", got)
	}
	// Walking back to the start hides the message from before the join.
	if got := ask(nil, []string{r.after2}, 0); slices.Contains(got, "before") || len(got) < 7 {
		t.Fatalf("get_missing_events to the start: %v", got)
	}
	status, body := r.net.SignedRequest(t, r.hs2, r.hs1, http.MethodPost, r.path("/get_missing_events/%s", r.roomID), []int{1})
	testserver.WantError(t, "get_missing_events with a list body", status, body, http.StatusBadRequest, "M_BAD_JSON")
}

func testTimestampToEvent(t *testing.T, r *readRoom) {
	lookup := func(ts int64, dir string) (int, map[string]any) {
		return r.get(t, r.hs2, r.path("/timestamp_to_event/%s?ts=%d&dir=%s", r.roomID, ts, dir))
	}
	status, body := lookup(0, "f")
	testserver.WantStatus(t, "timestamp_to_event forwards", status, body, http.StatusOK)
	if body["event_id"] != r.createID || body["origin_server_ts"] == nil {
		t.Fatalf("timestamp_to_event from 0: %v, want the create event %s", body, r.createID)
	}
	status, body = lookup(time.Now().Add(time.Hour).UnixMilli(), "b")
	testserver.WantStatus(t, "timestamp_to_event backwards", status, body, http.StatusOK)
	if body["event_id"] != r.after2 {
		t.Fatalf("timestamp_to_event backwards from now: %v, want %s", body, r.after2)
	}
	status, body = lookup(time.Now().Add(time.Hour).UnixMilli(), "f")
	testserver.WantError(t, "timestamp_to_event after the end", status, body, http.StatusNotFound, "M_NOT_FOUND")
	status, body = r.get(t, r.hs2, r.path("/timestamp_to_event/%s?ts=0", r.roomID))
	testserver.WantError(t, "timestamp_to_event without dir", status, body, http.StatusBadRequest, "M_MISSING_PARAM")
}

// readPaths are the read endpoints of the room, one request each.
func (r *readRoom) readPaths() []string {
	after := url.QueryEscape(r.after1)
	return []string{
		r.path("/event/%s", r.after1),
		r.path("/state/%s?event_id=%s", r.roomID, after),
		r.path("/state_ids/%s?event_id=%s", r.roomID, after),
		r.path("/event_auth/%s/%s", r.roomID, r.after1),
		r.path("/backfill/%s?v=%s&limit=10", r.roomID, after),
	}
}

func testReadRefusals(t *testing.T, r *readRoom) {
	_, forged, _ := ed25519.GenerateKey(nil)
	wrongKey := signing.Key{ID: serverKey(t, r.hs2).ID, Private: forged}
	client := caClient(t, r.hs1)
	for _, p := range r.readPaths() {
		// hs3 has nobody in the room.
		status, body := r.get(t, r.hs3, p)
		testserver.WantError(t, "hs3 "+p, status, body, http.StatusForbidden, "M_FORBIDDEN")
		// Signed as hs2 with a key that is not hs2's.
		status, body = r.net.RequestSignedWith(t, "hs2.test", wrongKey, r.hs1, http.MethodGet, p, nil)
		testserver.WantError(t, "forged "+p, status, body, http.StatusUnauthorized, "M_UNAUTHORIZED")
		// Not signed at all.
		resp, err := client.Get("https://" + r.hs1.Config.Listen.Federation + p)
		if err != nil {
			t.Fatal(err)
		}
		var errBody map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&errBody)
		resp.Body.Close()
		testserver.WantError(t, "unsigned "+p, resp.StatusCode, errBody, http.StatusUnauthorized, "M_UNAUTHORIZED")
	}
	status, body := r.net.SignedRequest(t, r.hs3, r.hs1, http.MethodPost, r.path("/get_missing_events/%s", r.roomID),
		map[string]any{"earliest_events": []string{}, "latest_events": []string{r.after2}})
	testserver.WantError(t, "hs3 get_missing_events", status, body, http.StatusForbidden, "M_FORBIDDEN")
	status, body = r.get(t, r.hs2, r.path("/state_ids/%s?event_id=%s", "!unknown:hs1.test", url.QueryEscape(r.after1)))
	testserver.WantError(t, "state_ids of an unknown room", status, body, http.StatusNotFound, "M_NOT_FOUND")
}

// caClient is an HTTPS client trusting the test network's CA.
func caClient(t *testing.T, s *testserver.Server) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(s.Config.Federation.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: s.Config.ServerName},
	}}
}

func testReadACL(t *testing.T, r *readRoom) {
	ctx := context.Background()
	if _, err := r.alice.SendStateEvent(ctx, id.RoomID(r.roomID), event.StateServerACL, "",
		map[string]any{"allow": []string{"*"}, "deny": []string{"hs2.test"}, "allow_ip_literals": false}); err != nil {
		t.Fatal(err)
	}
	paths := append(r.readPaths(), r.path("/timestamp_to_event/%s?ts=0&dir=f", r.roomID))
	for _, p := range paths {
		status, body := r.get(t, r.hs2, p)
		testserver.WantError(t, "denied "+p, status, body, http.StatusForbidden, "M_FORBIDDEN")
	}
	status, body := r.net.SignedRequest(t, r.hs2, r.hs1, http.MethodPost, r.path("/get_missing_events/%s", r.roomID),
		map[string]any{"earliest_events": []string{}, "latest_events": []string{r.after2}})
	testserver.WantError(t, "denied get_missing_events", status, body, http.StatusForbidden, "M_FORBIDDEN")
}
