package admin_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testserver"
)

const admReports = admBase + "/event_reports"

// TestEventReportsAdminAPI: reports of events are listed for admins
// (newest first, paged, filtered by reporter and room) with the event's
// sender and the room's name and alias, read one by one with the event,
// and deleted; reports of rooms are not event reports.
func TestEventReportsAdminAPI(t *testing.T) {
	openWithSecret := func(c *config.Config) { c.Registration.SharedSecret, c.Registration.Open = admSecret, true }
	testserver.EachEngine(t, openWithSecret, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		admin := s.RegisterAdmin("root", "pw-root-123")
		alice, bob, carol := s.Register("alice", "pw-alice-1"), s.Register("bob", "pw-bob-1"), s.Register("carol", "pw-carol-1")
		spam, err := bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Spam Room", RoomAliasName: "spam"})
		if err != nil {
			t.Fatal(err)
		}
		other, err := carol.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := alice.JoinRoom(ctx, spam.RoomID.String(), nil); err != nil {
			t.Fatal(err)
		}
		if _, err := bob.JoinRoom(ctx, other.RoomID.String(), nil); err != nil {
			t.Fatal(err)
		}
		sendText := func(c *mautrix.Client, room id.RoomID, body string) id.EventID {
			t.Helper()
			resp, err := c.SendMessageEvent(ctx, room, event.EventMessage, map[string]any{"msgtype": "m.text", "body": body})
			if err != nil {
				t.Fatal(err)
			}
			return resp.EventID
		}
		buy, cheap, elsewhere := sendText(bob, spam.RoomID, "buy now"), sendText(bob, spam.RoomID, "cheap"), sendText(bob, other.RoomID, "more")
		report := func(c *mautrix.Client, room id.RoomID, ev id.EventID, body map[string]any) {
			t.Helper()
			status, resp := s.Do(t, http.MethodPost, fmt.Sprintf("/_matrix/client/v3/rooms/%s/report/%s", room, ev), c.AccessToken, body)
			testserver.WantStatus(t, "report", status, resp, http.StatusOK)
		}
		report(alice, spam.RoomID, buy, map[string]any{"reason": "spam", "score": -100})
		report(alice, spam.RoomID, cheap, map[string]any{})
		report(carol, other.RoomID, elsewhere, map[string]any{"reason": "also spam"})
		status, resp := s.Do(t, http.MethodPost, fmt.Sprintf("/_matrix/client/v3/rooms/%s/report", spam.RoomID), alice.AccessToken, map[string]any{"reason": "room"})
		testserver.WantStatus(t, "room report", status, resp, http.StatusOK)

		list := func(query string) map[string]any {
			t.Helper()
			status, body := s.Do(t, http.MethodGet, admReports+query, admin.AccessToken, nil)
			testserver.WantStatus(t, "event_reports"+query, status, body, http.StatusOK)
			return body
		}
		events := func(body map[string]any) []string {
			var out []string
			for _, r := range body["event_reports"].([]any) {
				out = append(out, r.(map[string]any)["event_id"].(string))
			}
			return out
		}
		all := list("")
		if all["total"] != float64(3) || fmt.Sprint(events(all)) != fmt.Sprint([]id.EventID{elsewhere, cheap, buy}) || all["next_token"] != nil {
			t.Fatalf("all reports: %v", all)
		}
		first := all["event_reports"].([]any)[2].(map[string]any)
		if first["user_id"] != string(alice.UserID) || first["sender"] != string(bob.UserID) || first["room_id"] != string(spam.RoomID) ||
			first["name"] != "Spam Room" || first["canonical_alias"] != "#spam:"+s.Config.ServerName || first["reason"] != "spam" ||
			first["score"] != nil || first["received_ts"].(float64) <= 0 || fmt.Sprint(first["forwarded_to"]) != "[]" || first["resolved_by"] != nil {
			t.Fatalf("report of %s: %v", buy, first)
		}
		if second := all["event_reports"].([]any)[1].(map[string]any); second["reason"] != nil || second["score"] != nil {
			t.Fatalf("report without reason or score: %v", second)
		}
		if third := all["event_reports"].([]any)[0].(map[string]any); third["name"] != nil || third["canonical_alias"] != nil {
			t.Fatalf("report in an unnamed room: %v", third)
		}
		if got := list("?dir=f&limit=2"); fmt.Sprint(events(got)) != fmt.Sprint([]id.EventID{buy, cheap}) || got["next_token"] != float64(2) {
			t.Fatalf("oldest first, two: %v", got)
		}
		if got := list("?dir=f&from=2"); fmt.Sprint(events(got)) != fmt.Sprint([]id.EventID{elsewhere}) {
			t.Fatalf("from 2: %v", got)
		}
		if got := list("?user_id=carol"); got["total"] != float64(1) || fmt.Sprint(events(got)) != fmt.Sprint([]id.EventID{elsewhere}) {
			t.Fatalf("reported by carol: %v", got)
		}
		if got := list("?room_id=" + string(spam.RoomID)); got["total"] != float64(2) {
			t.Fatalf("in the spam room: %v", got)
		}

		id := int64(first["id"].(float64))
		path := fmt.Sprintf("%s/%d", admReports, id)
		status, one := s.Do(t, http.MethodGet, path, admin.AccessToken, nil)
		testserver.WantStatus(t, "one report", status, one, http.StatusOK)
		// event_json is the PDU as stored (no event_id since room version 3).
		evJSON, _ := one["event_json"].(map[string]any)
		if one["event_id"] != string(buy) || evJSON["sender"] != string(bob.UserID) || evJSON["room_id"] != string(spam.RoomID) ||
			evJSON["content"].(map[string]any)["body"] != "buy now" || one["name"] != "Spam Room" {
			t.Fatalf("one report: %v", one)
		}
		for _, c := range []struct {
			method, path, token string
			status              int
			errcode             string
		}{
			{http.MethodGet, admReports, alice.AccessToken, http.StatusForbidden, "M_FORBIDDEN"},
			{http.MethodGet, path, alice.AccessToken, http.StatusForbidden, "M_FORBIDDEN"},
			{http.MethodDelete, path, alice.AccessToken, http.StatusForbidden, "M_FORBIDDEN"},
			{http.MethodGet, admReports + "?limit=-1", admin.AccessToken, http.StatusBadRequest, "M_INVALID_PARAM"},
			{http.MethodGet, admReports + "?dir=x", admin.AccessToken, http.StatusBadRequest, "M_INVALID_PARAM"},
			{http.MethodGet, admReports + "/abc", admin.AccessToken, http.StatusBadRequest, "M_INVALID_PARAM"},
			{http.MethodGet, admReports + "/999999", admin.AccessToken, http.StatusNotFound, "M_NOT_FOUND"},
		} {
			status, body := s.Do(t, c.method, c.path, c.token, nil)
			testserver.WantError(t, c.method+" "+c.path, status, body, c.status, c.errcode)
		}

		status, resp = s.Do(t, http.MethodDelete, path, admin.AccessToken, nil)
		testserver.WantStatus(t, "delete", status, resp, http.StatusOK)
		status, resp = s.Do(t, http.MethodGet, path, admin.AccessToken, nil)
		testserver.WantError(t, "deleted report", status, resp, http.StatusNotFound, "M_NOT_FOUND")
		status, resp = s.Do(t, http.MethodDelete, path, admin.AccessToken, nil)
		testserver.WantError(t, "delete again", status, resp, http.StatusNotFound, "M_NOT_FOUND")
		if got := list(""); got["total"] != float64(2) {
			t.Fatalf("after deleting one: %v", got)
		}
	})
}
