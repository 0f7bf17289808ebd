package clientapi_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"maunium.net/go/mautrix"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestReports covers reports of events (v1.0), rooms (v1.13) and users
// (v1.14) with the v1.18 rules: the score is accepted and ignored; a
// report of an unknown event, room or local user is answered exactly as
// a report of a known one, and is not stored; a reporter must still be
// joined to report an event, which answers the same for rooms that
// exist and rooms that do not.
func TestReports(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice, bob, eve := s.Register("alice", "pw-alice-1"), s.Register("bob", "pw-bob-1"), s.Register("eve", "pw-eve-1")
		room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bob.JoinRoomByID(ctx, room.RoomID); err != nil {
			t.Fatal(err)
		}
		msg, err := alice.SendText(ctx, room.RoomID, "something bad")
		if err != nil {
			t.Fatal(err)
		}
		roomPath := "/_matrix/client/v3/rooms/" + url.PathEscape(string(room.RoomID))
		reportPath := roomPath + "/report/" + url.PathEscape(string(msg.EventID))
		post := func(what, path, token string, body any) {
			t.Helper()
			status, resp := s.Do(t, http.MethodPost, path, token, body)
			testserver.WantStatus(t, what, status, resp, http.StatusOK)
			if len(resp) != 0 {
				t.Fatalf("%s: answer %v, want {}", what, resp)
			}
		}
		// score, removed in v1.18, is ignored whatever it holds.
		post("report event with a score", reportPath, bob.AccessToken, map[string]any{"reason": "spam", "score": -100})
		post("report event with a bad score", reportPath, bob.AccessToken, map[string]any{"score": "very"})
		post("unknown event", roomPath+"/report/$nope", bob.AccessToken, map[string]any{"reason": "x"})
		for _, path := range []string{reportPath, "/_matrix/client/v3/rooms/!nope:hs1.test/report/$nope"} {
			status, body := s.Do(t, http.MethodPost, path, eve.AccessToken, map[string]any{"reason": "x"})
			testserver.WantError(t, "not joined: "+path, status, body, http.StatusNotFound, "M_NOT_FOUND")
		}

		post("report room (not joined)", roomPath+"/report", eve.AccessToken, map[string]any{"reason": "bad room"})
		post("unknown room", "/_matrix/client/v3/rooms/!nope:hs1.test/report", eve.AccessToken, map[string]any{"reason": "x"})
		if err := eve.ReportUser(ctx, alice.UserID, "rude"); err != nil {
			t.Fatal(err)
		}
		post("unknown local user", "/_matrix/client/v3/users/@ghost:hs1.test/report", eve.AccessToken, map[string]any{"reason": "x"})
		post("remote user", "/_matrix/client/v3/users/@troll:elsewhere.test/report", eve.AccessToken, map[string]any{"reason": ""})

		for _, c := range []struct {
			what, path string
			body       any
			status     int
			code       string
		}{
			{"reason not a string", reportPath, map[string]any{"reason": 5}, http.StatusBadRequest, "M_BAD_JSON"},
			{"room report without reason", roomPath + "/report", map[string]any{}, http.StatusBadRequest, "M_BAD_JSON"},
			{"room report with null reason", roomPath + "/report", map[string]any{"reason": nil}, http.StatusBadRequest, "M_BAD_JSON"},
			{"user report without reason", "/_matrix/client/v3/users/" + string(alice.UserID) + "/report", map[string]any{}, http.StatusBadRequest, "M_BAD_JSON"},
			{"reason too long", roomPath + "/report", map[string]any{"reason": strings.Repeat("x", 1001)}, http.StatusBadRequest, "M_BAD_JSON"},
			{"not a user ID", "/_matrix/client/v3/users/alice/report", map[string]any{"reason": "x"}, http.StatusBadRequest, "M_INVALID_PARAM"},
		} {
			status, body := s.Do(t, http.MethodPost, c.path, bob.AccessToken, c.body)
			testserver.WantError(t, c.what, status, body, c.status, c.code)
		}

		db, err := store.Open(ctx, s.Config.DatabaseURL(), 2)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		reports, err := db.Reports(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(reports) != 5 {
			t.Fatalf("reports: %+v", reports)
		}
		r := reports[0]
		if r.Reporter != string(bob.UserID) || r.EventID != string(msg.EventID) || r.RoomID != string(room.RoomID) || r.Reason != "spam" || r.Score != nil {
			t.Fatalf("event report: %+v", r)
		}
		if reports[1].EventID != string(msg.EventID) || reports[1].Reason != "" {
			t.Fatalf("second event report: %+v", reports[1])
		}
		if reports[2].Kind() != store.ReportRoom || reports[2].RoomID != string(room.RoomID) || reports[2].Reason != "bad room" ||
			reports[3].TargetUserID != string(alice.UserID) || reports[3].Reason != "rude" || reports[4].TargetUserID != "@troll:elsewhere.test" {
			t.Fatalf("room/user reports: %+v", reports[2:])
		}
	})
}

// TestReportRateLimit: reports draw from their own bucket
// (rate_limit.report, Synapse's rc_reports), per user.
func TestReportRateLimit(t *testing.T) {
	s := testserver.Start(t, "", func(c *config.Config) {
		c.RateLimit.Enabled = true
		c.RateLimit.Report = config.RateLimitBucket{PerSecond: 0.001, Burst: 2}
		c.RateLimit.Register = config.RateLimitBucket{PerSecond: 100, Burst: 100}
	})
	alice, bob := s.Register("alice", "pw-alice-1"), s.Register("bob", "pw-bob-1")
	path := "/_matrix/client/v3/users/" + string(alice.UserID) + "/report"
	for range 2 {
		status, body := s.Do(t, http.MethodPost, path, bob.AccessToken, map[string]any{"reason": "x"})
		testserver.WantStatus(t, "report within the burst", status, body, http.StatusOK)
	}
	status, body := s.Do(t, http.MethodPost, path, bob.AccessToken, map[string]any{"reason": "x"})
	testserver.WantError(t, "report over the burst", status, body, http.StatusTooManyRequests, "M_LIMIT_EXCEEDED")
	status, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/users/"+string(bob.UserID)+"/report", alice.AccessToken, map[string]any{"reason": "x"})
	testserver.WantStatus(t, "another user's report", status, body, http.StatusOK)
}
