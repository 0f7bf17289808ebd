package admin_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/server"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestAdminServerVersionAndBackgroundUpdates: server_version answers
// the version; background updates report none running, the enabled flag
// toggles, start_job accepts Synapse's two jobs and refuses others.
func TestAdminServerVersionAndBackgroundUpdates(t *testing.T) {
	testserver.EachEngine(t, func(c *config.Config) { c.Registration.SharedSecret = admSecret }, func(t *testing.T, s *testserver.Server) {
		tok := s.RegisterAdmin("root", "pw-root").AccessToken
		status, body := s.Do(t, http.MethodGet, admBase+"/server_version", tok, nil)
		testserver.WantStatus(t, "server_version", status, body, http.StatusOK)
		if body["server_version"] != server.Version {
			t.Fatalf("server_version: %v", body)
		}
		status, body = s.Do(t, http.MethodGet, admBase+"/background_updates/status", tok, nil)
		testserver.WantStatus(t, "status", status, body, http.StatusOK)
		if fmt.Sprint(body) != "map[current_updates:map[] enabled:true]" {
			t.Fatalf("status: %v", body)
		}
		status, body = s.Do(t, http.MethodPost, admBase+"/background_updates/enabled", tok, map[string]any{"enabled": false})
		testserver.WantStatus(t, "disable", status, body, http.StatusOK)
		status, body = s.Do(t, http.MethodGet, admBase+"/background_updates/enabled", tok, nil)
		if status != http.StatusOK || body["enabled"] != false {
			t.Fatalf("enabled after disabling: %d %v", status, body)
		}
		status, body = s.Do(t, http.MethodPost, admBase+"/background_updates/enabled", tok, map[string]any{})
		testserver.WantError(t, "enabled missing", status, body, http.StatusBadRequest, "M_MISSING_PARAM")
		status, body = s.Do(t, http.MethodPost, admBase+"/background_updates/enabled", tok, map[string]any{"enabled": "yes"})
		testserver.WantError(t, "enabled not a boolean", status, body, http.StatusBadRequest, "M_BAD_JSON")
		status, body = s.Do(t, http.MethodPost, admBase+"/background_updates/start_job", tok, map[string]any{"job_name": "regenerate_directory"})
		testserver.WantStatus(t, "start_job", status, body, http.StatusOK)
		status, body = s.Do(t, http.MethodPost, admBase+"/background_updates/start_job", tok, map[string]any{"job_name": "nope"})
		testserver.WantError(t, "start_job unknown", status, body, http.StatusBadRequest, "M_UNKNOWN")
	})
}

// TestAdminStatistics: users' media usage (counts, bytes, filters,
// ordering, pages) and the rooms' estimated sizes.
func TestAdminStatistics(t *testing.T) {
	testserver.EachEngine(t, func(c *config.Config) { c.Registration.SharedSecret = admSecret }, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		tok := s.RegisterAdmin("root", "pw-root").AccessToken
		alice, bob := s.Register("alice", "pw-alice"), s.Register("bob", "pw-bob")
		if err := alice.SetDisplayName(ctx, "Alice Liddell"); err != nil {
			t.Fatal(err)
		}
		start := time.Now().UnixMilli()
		amUpload(t, s, alice.AccessToken, []byte("12345"))
		amUpload(t, s, alice.AccessToken, []byte("1234567"))
		amUpload(t, s, bob.AccessToken, []byte("123"))
		stats := func(query string) map[string]any {
			t.Helper()
			status, body := s.Do(t, http.MethodGet, admBase+"/statistics/users/media"+query, tok, nil)
			testserver.WantStatus(t, "statistics "+query, status, body, http.StatusOK)
			return body
		}
		users := func(body map[string]any) string {
			var out []string
			list, _ := body["users"].([]any)
			for _, u := range list {
				m, _ := u.(map[string]any)
				out = append(out, fmt.Sprint(m["user_id"], " ", m["displayname"], " ", m["media_count"], " ", m["media_length"]))
			}
			return strings.Join(out, "; ")
		}
		a, b := alice.UserID.String(), bob.UserID.String()
		body := stats("")
		if got, want := users(body), a+" Alice Liddell 2 12; "+b+" bob 1 3"; got != want || body["total"] != float64(2) || body["next_token"] != nil {
			t.Fatalf("statistics: %q total %v next %v, want %q", got, body["total"], body["next_token"], want)
		}
		if got := users(stats("?order_by=media_length&dir=b")); !strings.HasPrefix(got, a) {
			t.Fatalf("by length, largest first: %q", got)
		}
		if got := users(stats("?order_by=media_count")); !strings.HasPrefix(got, b) {
			t.Fatalf("by count: %q", got)
		}
		if got := users(stats("?search_term=liddell")); got != a+" Alice Liddell 2 12" {
			t.Fatalf("search by display name: %q", got)
		}
		if got := users(stats("?search_term=BO")); got != b+" bob 1 3" {
			t.Fatalf("search by localpart: %q", got)
		}
		body = stats("?limit=1")
		if users(body) != a+" Alice Liddell 2 12" || body["next_token"] != float64(1) || body["total"] != float64(2) {
			t.Fatalf("first page: %v", body)
		}
		if got := users(stats("?from=1&limit=1")); got != b+" bob 1 3" {
			t.Fatalf("second page: %q", got)
		}
		if got := users(stats("?until_ts=" + strconv.FormatInt(start-1, 10))); got != "" {
			t.Fatalf("until before any upload: %q", got)
		}
		for _, bad := range []string{"?order_by=size", "?dir=x", "?limit=-1", "?from=a", "?from_ts=-5", "?from_ts=10&until_ts=5"} {
			status, body := s.Do(t, http.MethodGet, admBase+"/statistics/users/media"+bad, tok, nil)
			testserver.WantError(t, "statistics "+bad, status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		}

		small, err := bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{})
		if err != nil {
			t.Fatal(err)
		}
		big, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			if _, err := alice.SendText(ctx, big.RoomID, strings.Repeat("x", 500)+strconv.Itoa(i)); err != nil {
				t.Fatal(err)
			}
		}
		status, body := s.Do(t, http.MethodGet, admBase+"/statistics/database/rooms", tok, nil)
		testserver.WantStatus(t, "room sizes", status, body, http.StatusOK)
		rooms, _ := body["rooms"].([]any)
		if len(rooms) != 2 {
			t.Fatalf("room sizes: %v", body)
		}
		first, _ := rooms[0].(map[string]any)
		second, _ := rooms[1].(map[string]any)
		s1, _ := first["estimated_size"].(float64)
		s2, _ := second["estimated_size"].(float64)
		if first["room_id"] != big.RoomID.String() || second["room_id"] != small.RoomID.String() || s1 <= s2+2500 || s2 <= 0 {
			t.Fatalf("room sizes: %v", body)
		}
	})
}

// TestAdminDestinations: hs1 lists hs2 once a room joins them, healthy;
// each event delivered moves hs2's last_successful_stream_ordering and
// its room's stream_ordering, an event not delivered does not;
// with hs2 down, its failures show as retry timings; reset_connection
// refuses a healthy destination and this server, and ends the back-off.
func TestAdminDestinations(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, func(_ int, c *config.Config) { c.Registration.SharedSecret = admSecret }, func(t *testing.T, n *testserver.Network) {
		ctx := context.Background()
		hs1, hs2 := n.Servers[0], n.Servers[1]
		tok := hs1.RegisterAdmin("root", "pw-root").AccessToken
		alice, bob := hs1.Register("alice", "pw-alice"), hs2.Register("bob", "pw-bob")
		room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bob.JoinRoom(ctx, room.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
			t.Fatal(err)
		}
		get := func(path string) (int, map[string]any) {
			t.Helper()
			return hs1.Do(t, http.MethodGet, admBase+"/federation/destinations"+path, tok, nil)
		}
		status, body := get("")
		testserver.WantStatus(t, "destinations", status, body, http.StatusOK)
		// The queue's counts are checked below: a typing or presence
		// update may wait for hs2 at this moment.
		if ds, _ := body["destinations"].([]any); len(ds) == 1 {
			d, _ := ds[0].(map[string]any)
			if _, ok := d["queued_pdus"].(float64); !ok {
				t.Fatalf("destinations without queued_pdus: %v", body)
			}
			if _, ok := d["queued_edus"].(float64); !ok {
				t.Fatalf("destinations without queued_edus: %v", body)
			}
			delete(d, "queued_pdus")
			delete(d, "queued_edus")
		}
		if fmt.Sprint(body) != "map[destinations:[map[destination:hs2.test failure_ts:<nil> last_successful_stream_ordering:<nil> retry_interval:0 retry_last_ts:0]] total:1]" {
			t.Fatalf("destinations: %v", body)
		}
		// Each event delivered to hs2 moves its last_successful_stream_ordering.
		delivered := func() float64 {
			t.Helper()
			_, body := get("/hs2.test")
			pos, _ := body["last_successful_stream_ordering"].(float64)
			return pos
		}
		waitDelivered := func(after float64) float64 {
			t.Helper()
			deadline := time.Now().Add(30 * time.Second)
			for {
				if pos := delivered(); pos > after {
					return pos
				}
				if time.Now().After(deadline) {
					t.Fatalf("last_successful_stream_ordering stayed at %v", after)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		if _, err := alice.SendText(ctx, room.RoomID, "hello hs2"); err != nil {
			t.Fatal(err)
		}
		pos1 := waitDelivered(0)
		if _, err := alice.SendText(ctx, room.RoomID, "hello again"); err != nil {
			t.Fatal(err)
		}
		pos2 := waitDelivered(pos1)
		// The room's own position is its last event delivered: the same.
		status, body = get("/hs2.test/rooms")
		testserver.WantStatus(t, "rooms after delivery", status, body, http.StatusOK)
		if r := body["rooms"].([]any); len(r) != 1 || r[0].(map[string]any)["stream_ordering"] != pos2 ||
			r[0].(map[string]any)["room_id"] != room.RoomID.String() || body["total"] != float64(1) {
			t.Fatalf("destination rooms after delivery: %v, want stream_ordering %v", body, pos2)
		}
		status, body = get("?order_by=last_successful_stream_ordering")
		testserver.WantStatus(t, "order by last_successful_stream_ordering", status, body, http.StatusOK)
		status, body = get("/nowhere.test")
		testserver.WantError(t, "unknown destination", status, body, http.StatusNotFound, "M_NOT_FOUND")
		status, body = get("/nowhere.test/rooms")
		testserver.WantError(t, "rooms of an unknown destination", status, body, http.StatusNotFound, "M_NOT_FOUND")
		status, body = get("?order_by=colour")
		testserver.WantError(t, "bad order_by", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		reset := func(dest string) (int, map[string]any) {
			return hs1.Do(t, http.MethodPost, admBase+"/federation/destinations/"+dest+"/reset_connection", tok, map[string]any{})
		}
		status, body = reset("hs2.test")
		testserver.WantError(t, "reset a healthy destination", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		status, body = reset("hs1.test")
		testserver.WantError(t, "reset this server", status, body, http.StatusBadRequest, "M_INVALID_PARAM")

		hs2.Stop()
		if _, err := alice.SendText(ctx, room.RoomID, "while hs2 is down"); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, body = get("/hs2.test")
			if last, _ := body["retry_last_ts"].(float64); last > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("hs2's failure never showed: %v", body)
			}
			time.Sleep(50 * time.Millisecond)
		}
		last, _ := body["retry_last_ts"].(float64)
		failure, _ := body["failure_ts"].(float64)
		if interval, _ := body["retry_interval"].(float64); interval <= 0 || failure <= 0 || failure > last {
			t.Fatalf("retry timings of a failing destination: %v", body)
		}
		if body["last_successful_stream_ordering"] != pos2 {
			t.Fatalf("an undelivered event moved last_successful_stream_ordering: %v, want %v", body, pos2)
		}
		// The undelivered event waits in hs2's queue, and the admin sees it.
		if queued, _ := body["queued_pdus"].(float64); queued < 1 {
			t.Fatalf("queued_pdus of a destination that is down with an event for it: %v", body)
		}
		status, body = get("?order_by=retry_last_ts&dir=b")
		testserver.WantStatus(t, "ordered", status, body, http.StatusOK)
		hs2.Restart()
		hs2.Repoint(bob)
		status, body = reset("hs2.test")
		testserver.WantStatus(t, "reset", status, body, http.StatusOK)
		_, body = get("/hs2.test")
		if body["retry_last_ts"] != float64(0) || body["failure_ts"] != nil {
			t.Fatalf("after reset: %v", body)
		}
		// The event queued while hs2 was down goes now, and counts; the
		// queue empties.
		waitDelivered(pos2)
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			_, body = get("/hs2.test")
			if body["queued_pdus"] == float64(0) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("hs2's queue after delivery: %v", body)
			}
		}
	})
}

// TestAdminOperationsForbidden: every route of this file and of
// media_e2e_test.go refuses a user who is not an admin (403 M_FORBIDDEN)
// and a request without a token (401).
func TestAdminOperationsForbidden(t *testing.T) {
	testserver.EachEngine(t, func(c *config.Config) { c.Registration.SharedSecret = admSecret }, func(t *testing.T, s *testserver.Server) {
		user := s.Register("mallory", "pw-mallory").AccessToken
		for _, r := range []struct{ method, path string }{
			{"POST", "/media/quarantine/localhost/abc"},
			{"POST", "/media/unquarantine/localhost/abc"},
			{"POST", "/room/!r:localhost/media/quarantine"},
			{"POST", "/quarantine_media/!r:localhost"},
			{"POST", "/user/@mallory:localhost/media/quarantine"},
			{"GET", "/room/!r:localhost/media"},
			{"GET", "/media/localhost/abc"},
			{"DELETE", "/media/localhost/abc"},
			{"POST", "/media/protect/abc"},
			{"POST", "/media/unprotect/abc"},
			{"POST", "/media/localhost/delete?before_ts=40000000000"},
			{"POST", "/media/delete?before_ts=40000000000"},
			{"POST", "/purge_media_cache?before_ts=40000000000"},
			{"GET", "/server_version"},
			{"GET", "/statistics/users/media"},
			{"GET", "/statistics/database/rooms"},
			{"GET", "/federation/destinations"},
			{"GET", "/federation/destinations/other.test"},
			{"GET", "/federation/destinations/other.test/rooms"},
			{"POST", "/federation/destinations/other.test/reset_connection"},
			{"GET", "/background_updates/enabled"},
			{"POST", "/background_updates/enabled"},
			{"GET", "/background_updates/status"},
			{"POST", "/background_updates/start_job"},
		} {
			var body any
			if r.method == "POST" {
				body = map[string]any{"enabled": true, "job_name": "regenerate_directory"}
			}
			status, resp := s.Do(t, r.method, admBase+r.path, user, body)
			testserver.WantError(t, r.method+" "+r.path+" as a user", status, resp, http.StatusForbidden, "M_FORBIDDEN")
			status, resp = s.Do(t, r.method, admBase+r.path, "", body)
			testserver.WantError(t, r.method+" "+r.path+" without a token", status, resp, http.StatusUnauthorized, "M_MISSING_TOKEN")
		}
	})
}
