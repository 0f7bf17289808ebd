package clientapi_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"maunium.net/go/mautrix"

	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testserver"
)

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
		reportPath := "/_matrix/client/v3/rooms/" + url.PathEscape(string(room.RoomID)) + "/report/" + url.PathEscape(string(msg.EventID))
		status, body := s.Do(t, http.MethodPost, reportPath, bob.AccessToken, map[string]any{"reason": "spam", "score": -100})
		testserver.WantStatus(t, "report event", status, body, http.StatusOK)
		status, body = s.Do(t, http.MethodPost, reportPath, bob.AccessToken, map[string]any{"score": 5})
		testserver.WantError(t, "bad score", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		status, body = s.Do(t, http.MethodPost, reportPath, eve.AccessToken, map[string]any{"reason": "x"})
		testserver.WantError(t, "not in the room", status, body, http.StatusNotFound, "M_NOT_FOUND")
		status, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/rooms/"+url.PathEscape(string(room.RoomID))+"/report/$nope", bob.AccessToken, map[string]any{"reason": "x"})
		testserver.WantError(t, "unknown event", status, body, http.StatusNotFound, "M_NOT_FOUND")

		if err := eve.ReportRoom(ctx, room.RoomID, "bad room"); err != nil {
			t.Fatalf("report room (not joined): %v", err)
		}
		err = eve.ReportRoom(ctx, "!nope:hs1.test", "x")
		testserver.WantHTTPError(t, "unknown room", err, http.StatusNotFound, "M_NOT_FOUND")
		if err := eve.ReportUser(ctx, alice.UserID, "rude"); err != nil {
			t.Fatal(err)
		}
		err = eve.ReportUser(ctx, "@ghost:hs1.test", "x")
		testserver.WantHTTPError(t, "unknown user", err, http.StatusNotFound, "M_NOT_FOUND")

		db, err := store.Open(ctx, s.Config.DatabaseURL(), 2)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		reports, err := db.Reports(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(reports) != 3 {
			t.Fatalf("reports: %+v", reports)
		}
		r := reports[0]
		if r.Reporter != string(bob.UserID) || r.EventID != string(msg.EventID) || r.RoomID != string(room.RoomID) || r.Reason != "spam" || r.Score == nil || *r.Score != -100 {
			t.Fatalf("event report: %+v", r)
		}
		if reports[1].RoomID != string(room.RoomID) || reports[1].EventID != "" || reports[2].TargetUserID != string(alice.UserID) || reports[2].Reason != "rude" {
			t.Fatalf("room/user reports: %+v", reports[1:])
		}
	})
}
