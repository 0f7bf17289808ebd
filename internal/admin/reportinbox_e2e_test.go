package admin_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"

	"maunium.net/go/mautrix"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testserver"
)

const inbox = "/_myelin/admin/v1/reports"

// ids are the "id" fields of a listing's entries under key.
func ids(body map[string]any, key string) []int64 {
	var out []int64
	for _, e := range body[key].([]any) {
		out = append(out, int64(e.(map[string]any)["id"].(float64)))
	}
	return out
}

// TestReportInbox: reports of events, rooms and users reach the admins
// through Synapse's three report APIs (event_reports, room_reports paged
// by report ID with next_batch, user_reports paged by offset with
// next_token; each with its filters and its own fields) and through
// Myelin's inbox of all three, which also resolves and reopens them;
// every one of them refuses non-admins with 403 M_FORBIDDEN.
func TestReportInbox(t *testing.T) {
	withSecret := func(c *config.Config) { c.Registration.SharedSecret = admSecret }
	testserver.EachEngine(t, withSecret, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		admin := s.RegisterAdmin("root", "pw-root-123")
		alice, bob, carol := s.Register("alice", "pw-alice-1"), s.Register("bob", "pw-bob-1"), s.Register("carol", "pw-carol-1")
		lounge, err := bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Lounge", Topic: "chat", RoomAliasName: "lounge"})
		if err != nil {
			t.Fatal(err)
		}
		quiet, err := carol.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := alice.JoinRoomByID(ctx, lounge.RoomID); err != nil {
			t.Fatal(err)
		}
		msg, err := bob.SendText(ctx, lounge.RoomID, "buy now")
		if err != nil {
			t.Fatal(err)
		}
		report := func(c *mautrix.Client, path string, reason string) {
			t.Helper()
			status, body := s.Do(t, http.MethodPost, "/_matrix/client/v3"+path, c.AccessToken, map[string]any{"reason": reason})
			testserver.WantStatus(t, "report "+path, status, body, http.StatusOK)
		}
		// In order: 1 event, 2-4 rooms, 5-7 users (IDs are the order).
		report(alice, fmt.Sprintf("/rooms/%s/report/%s", lounge.RoomID, msg.EventID), "spam")
		report(alice, fmt.Sprintf("/rooms/%s/report", lounge.RoomID), "spam room")
		report(carol, fmt.Sprintf("/rooms/%s/report", lounge.RoomID), "")
		report(alice, fmt.Sprintf("/rooms/%s/report", quiet.RoomID), "quiet room")
		report(alice, fmt.Sprintf("/users/%s/report", bob.UserID), "spammer")
		report(carol, fmt.Sprintf("/users/%s/report", bob.UserID), "rude")
		report(carol, "/users/@troll:elsewhere.test/report", "troll")

		get := func(path string) map[string]any {
			t.Helper()
			status, body := s.Do(t, http.MethodGet, path, admin.AccessToken, nil)
			testserver.WantStatus(t, path, status, body, http.StatusOK)
			return body
		}
		wantIDs := func(what string, body map[string]any, key string, want []int64, total int) {
			t.Helper()
			if got := ids(body, key); !slices.Equal(got, want) || body["total"] != float64(total) {
				t.Fatalf("%s: ids %v total %v, want %v total %d (%v)", what, got, body["total"], want, total, body)
			}
		}
		events := get(admBase + "/event_reports")
		wantIDs("event reports", events, "event_reports", []int64{1}, 1)
		first := ids(events, "event_reports")[0]

		// room_reports: newest first, paged by report ID.
		rooms := get(admBase + "/room_reports?limit=2")
		wantIDs("room reports, page 1", rooms, "room_reports", []int64{4, 3}, 3)
		if rooms["next_batch"] != float64(3) {
			t.Fatalf("room reports next_batch: %v", rooms)
		}
		rooms = get(admBase + "/room_reports?limit=2&from=3")
		wantIDs("room reports, page 2", rooms, "room_reports", []int64{2}, 3)
		if _, more := rooms["next_batch"]; more {
			t.Fatalf("room reports, last page: %v", rooms)
		}
		wantIDs("room reports by alice", get(admBase+"/room_reports?user_id=alice"), "room_reports", []int64{4, 2}, 2)
		wantIDs("room reports of quiet", get(admBase+"/room_reports?room_id="+string(quiet.RoomID)), "room_reports", []int64{4}, 1)
		one := get(admBase + "/room_reports/2")
		if one["room_id"] != string(lounge.RoomID) || one["user_id"] != string(alice.UserID) || one["reason"] != "spam room" ||
			one["name"] != "Lounge" || one["topic"] != "chat" || one["canonical_alias"] != "#lounge:hs1.test" || one["event_id"] != nil {
			t.Fatalf("room report 2: %v", one)
		}
		if three := get(admBase + "/room_reports/3"); three["reason"] != nil {
			t.Fatalf("room report without a reason: %v", three)
		}

		// user_reports: offset paging, filters by reporter and target.
		users := get(admBase + "/user_reports?limit=2")
		wantIDs("user reports, page 1", users, "user_reports", []int64{7, 6}, 3)
		if users["next_token"] != float64(2) {
			t.Fatalf("user reports next_token: %v", users)
		}
		wantIDs("user reports, page 2", get(admBase+"/user_reports?limit=2&from=2"), "user_reports", []int64{5}, 3)
		wantIDs("user reports oldest first", get(admBase+"/user_reports?dir=f"), "user_reports", []int64{5, 6, 7}, 3)
		wantIDs("user reports of bob", get(admBase+"/user_reports?target_user_id=bob"), "user_reports", []int64{6, 5}, 2)
		wantIDs("user reports by carol", get(admBase+"/user_reports?user_id=carol"), "user_reports", []int64{7, 6}, 2)
		five := get(admBase + "/user_reports/5")
		if five["target_user_id"] != string(bob.UserID) || five["user_id"] != string(alice.UserID) || five["reason"] != "spammer" || five["room_id"] != nil {
			t.Fatalf("user report 5: %v", five)
		}

		// A report is only found under its own kind.
		for _, path := range []string{admBase + "/user_reports/1", admBase + "/event_reports/5", admBase + "/room_reports/1"} {
			status, body := s.Do(t, http.MethodGet, path, admin.AccessToken, nil)
			testserver.WantError(t, path, status, body, http.StatusNotFound, "M_NOT_FOUND")
		}

		// Myelin's inbox: every kind, newest first, with its kind.
		all := get(inbox)
		wantIDs("inbox", all, "reports", []int64{7, 6, 5, 4, 3, 2, 1}, 7)
		kinds := map[string]int{}
		for _, e := range all["reports"].([]any) {
			kinds[e.(map[string]any)["kind"].(string)]++
		}
		if kinds["event"] != 1 || kinds["room"] != 3 || kinds["user"] != 3 {
			t.Fatalf("inbox kinds: %v", kinds)
		}
		wantIDs("inbox of rooms", get(inbox+"?kind=room&dir=f&limit=2"), "reports", []int64{2, 3}, 3)
		wantIDs("inbox in the lounge", get(inbox+"?room_id="+string(lounge.RoomID)), "reports", []int64{3, 2, 1}, 3)
		wantIDs("inbox by carol", get(inbox+"?user_id=carol&from=1"), "reports", []int64{6, 3}, 3)

		// Resolve: who and when; resolved and open filters; reopen.
		status, body := s.Do(t, http.MethodPost, fmt.Sprintf("%s/%d/resolve", inbox, first), admin.AccessToken, map[string]any{})
		testserver.WantStatus(t, "resolve", status, body, http.StatusOK)
		if body["resolved_by"] != string(admin.UserID) || body["resolved_ts"] == nil || body["kind"] != "event" {
			t.Fatalf("resolved report: %v", body)
		}
		status, body = s.Do(t, http.MethodPost, inbox+"/5/resolve", admin.AccessToken, nil)
		testserver.WantStatus(t, "resolve without a body", status, body, http.StatusOK)
		wantIDs("resolved", get(inbox+"?resolved=true"), "reports", []int64{5, 1}, 2)
		wantIDs("open", get(inbox+"?resolved=false"), "reports", []int64{7, 6, 4, 3, 2}, 5)
		if ev := get(fmt.Sprintf("%s/event_reports/%d", admBase, first)); ev["resolved_by"] != string(admin.UserID) || ev["event_json"] == nil {
			t.Fatalf("event report after resolving: %v", ev)
		}
		status, body = s.Do(t, http.MethodPost, inbox+"/5/resolve", admin.AccessToken, map[string]any{"resolved": false})
		testserver.WantStatus(t, "reopen", status, body, http.StatusOK)
		if body["resolved_by"] != nil || body["resolved_ts"] != nil {
			t.Fatalf("reopened report: %v", body)
		}
		wantIDs("resolved after reopening", get(inbox+"?resolved=true"), "reports", []int64{1}, 1)
		if one := get(fmt.Sprintf("%s/%d", inbox, first)); one["kind"] != "event" || one["event_json"] == nil || one["resolved_by"] != string(admin.UserID) {
			t.Fatalf("inbox detail of the event report: %v", one)
		}
		if one := get(inbox + "/6"); one["kind"] != "user" || one["target_user_id"] != string(bob.UserID) || one["event_json"] != nil {
			t.Fatalf("inbox detail of a user report: %v", one)
		}

		// Delete, under each API.
		for _, path := range []string{admBase + "/room_reports/3", admBase + "/user_reports/7", inbox + "/4"} {
			status, body := s.Do(t, http.MethodDelete, path, admin.AccessToken, nil)
			testserver.WantStatus(t, "delete "+path, status, body, http.StatusOK)
			status, body = s.Do(t, http.MethodGet, path, admin.AccessToken, nil)
			testserver.WantError(t, "deleted "+path, status, body, http.StatusNotFound, "M_NOT_FOUND")
		}
		wantIDs("inbox after deleting", get(inbox), "reports", []int64{6, 5, 2, 1}, 4)

		for _, c := range []struct {
			method, path, token string
			status              int
			errcode             string
		}{
			{http.MethodGet, admBase + "/room_reports", alice.AccessToken, http.StatusForbidden, "M_FORBIDDEN"},
			{http.MethodGet, admBase + "/room_reports/2", alice.AccessToken, http.StatusForbidden, "M_FORBIDDEN"},
			{http.MethodDelete, admBase + "/room_reports/2", alice.AccessToken, http.StatusForbidden, "M_FORBIDDEN"},
			{http.MethodGet, admBase + "/user_reports", alice.AccessToken, http.StatusForbidden, "M_FORBIDDEN"},
			{http.MethodGet, admBase + "/user_reports/5", alice.AccessToken, http.StatusForbidden, "M_FORBIDDEN"},
			{http.MethodDelete, admBase + "/user_reports/5", alice.AccessToken, http.StatusForbidden, "M_FORBIDDEN"},
			{http.MethodGet, inbox, alice.AccessToken, http.StatusForbidden, "M_FORBIDDEN"},
			{http.MethodGet, inbox + "/2", alice.AccessToken, http.StatusForbidden, "M_FORBIDDEN"},
			{http.MethodDelete, inbox + "/2", alice.AccessToken, http.StatusForbidden, "M_FORBIDDEN"},
			{http.MethodPost, inbox + "/2/resolve", alice.AccessToken, http.StatusForbidden, "M_FORBIDDEN"},
			{http.MethodGet, inbox, "", http.StatusUnauthorized, "M_MISSING_TOKEN"},
			{http.MethodGet, inbox + "?kind=spam", admin.AccessToken, http.StatusBadRequest, "M_INVALID_PARAM"},
			{http.MethodGet, inbox + "?resolved=maybe", admin.AccessToken, http.StatusBadRequest, "M_INVALID_PARAM"},
			{http.MethodGet, inbox + "?dir=x", admin.AccessToken, http.StatusBadRequest, "M_INVALID_PARAM"},
			{http.MethodGet, admBase + "/room_reports?from=-1", admin.AccessToken, http.StatusBadRequest, "M_INVALID_PARAM"},
			{http.MethodGet, admBase + "/user_reports?limit=x", admin.AccessToken, http.StatusBadRequest, "M_INVALID_PARAM"},
			{http.MethodGet, admBase + "/user_reports/abc", admin.AccessToken, http.StatusBadRequest, "M_INVALID_PARAM"},
			{http.MethodPost, inbox + "/999/resolve", admin.AccessToken, http.StatusNotFound, "M_NOT_FOUND"},
			{http.MethodDelete, inbox + "/999", admin.AccessToken, http.StatusNotFound, "M_NOT_FOUND"},
		} {
			status, body := s.Do(t, c.method, c.path, c.token, nil)
			testserver.WantError(t, c.method+" "+c.path, status, body, c.status, c.errcode)
		}
		status, body = s.Do(t, http.MethodPost, inbox+"/2/resolve", admin.AccessToken, map[string]any{"resolved": "yes"})
		testserver.WantError(t, "resolved not a boolean", status, body, http.StatusBadRequest, "M_BAD_JSON")
	})
}
