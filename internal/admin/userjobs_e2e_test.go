package admin_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// bodies are a room's m.room.message events as a user reads them, by
// event ID: the body, "" once redacted.
func bodies(t *testing.T, s *testserver.Server, token, roomID string) map[string]string {
	t.Helper()
	status, body := s.Do(t, "GET", "/_matrix/client/v3/rooms/"+url.PathEscape(roomID)+"/messages?dir=b&limit=100", token, nil)
	testserver.WantStatus(t, "messages", status, body, http.StatusOK)
	out := map[string]string{}
	for _, e := range body["chunk"].([]any) {
		ev := e.(map[string]any)
		if ev["type"] == "m.room.message" {
			content, _ := ev["content"].(map[string]any)
			b, _ := content["body"].(string)
			out[ev["event_id"].(string)] = b
		}
	}
	return out
}

func sentID(t *testing.T, s *testserver.Server, token, roomID, text string) string {
	t.Helper()
	status, body := sendText(t, s, token, roomID, text)
	testserver.WantStatus(t, "send "+text, status, body, http.StatusOK)
	return body["event_id"].(string)
}

// waitRedaction polls a user redaction until it has finished: the job
// runs on the deletions worker, so its end is observed, not timed.
func waitRedaction(t *testing.T, s *testserver.Server, admin, id string) map[string]any {
	t.Helper()
	for {
		status, body := s.Do(t, "GET", admBase+"/user/redact_status/"+url.PathEscape(id), admin, nil)
		testserver.WantStatus(t, "redact_status", status, body, http.StatusOK)
		if body["status"] != "scheduled" && body["status"] != "active" {
			return body
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func startRedaction(t *testing.T, s *testserver.Server, admin, userID string, body map[string]any) string {
	t.Helper()
	status, resp := s.Do(t, "POST", admBase+"/user/"+url.PathEscape(userID)+"/redact", admin, body)
	testserver.WantStatus(t, "redact "+userID, status, resp, http.StatusOK)
	id, _ := resp["redact_id"].(string)
	if id == "" {
		t.Fatalf("no redact_id: %v", resp)
	}
	return id
}

// TestAdminRedactUser covers POST /_synapse/admin/v1/user/{userId}/redact
// and GET .../user/redact_status/{redactId}: the rooms named, or every
// room the user is in; the newest events up to the limit; the user's
// own redactions unless use_admin, whose failures are reported; bad
// requests refused; non-admins refused.
func TestAdminRedactUser(t *testing.T) {
	testserver.EachEngine(t, withSecret, func(t *testing.T, s *testserver.Server) {
		admin := s.RegisterAdmin("root", "root password").AccessToken
		alice := userToken(t, s, admin, "alice", "alice pw")
		bob := userToken(t, s, admin, "bob", "bob pw")
		room1, room2 := publicRoom(t, s, alice), publicRoom(t, s, alice)
		joinRoom(t, s, bob, room1)
		joinRoom(t, s, bob, room2)
		spam1, spam2 := sentID(t, s, bob, room1, "spam 1"), sentID(t, s, bob, room1, "spam 2")
		fine := sentID(t, s, alice, room1, "fine")
		spam3 := sentID(t, s, bob, room2, "spam 3")

		// Only room1, with a limit of one: the newest of bob's events.
		id := startRedaction(t, s, admin, s.UserID("bob"), map[string]any{"rooms": []string{room1}, "reason": "spam", "limit": 1})
		if st := waitRedaction(t, s, admin, id); st["status"] != "complete" || len(st["failed_redactions"].(map[string]any)) != 0 {
			t.Fatalf("status: %v", st)
		}
		got := bodies(t, s, alice, room1)
		if got[spam2] != "" || got[spam1] != "spam 1" || got[fine] != "fine" {
			t.Fatalf("after limit 1 in room1: %v", got)
		}
		// The redaction is bob's own (a local user's events are redacted
		// as them), with the reason.
		status, body := s.Do(t, "GET", "/_matrix/client/v3/rooms/"+url.PathEscape(room1)+"/event/"+url.PathEscape(spam2), alice, nil)
		testserver.WantStatus(t, "redacted event", status, body, http.StatusOK)
		because, _ := body["unsigned"].(map[string]any)["redacted_because"].(map[string]any)
		if because["sender"] != s.UserID("bob") || because["content"].(map[string]any)["reason"] != "spam" {
			t.Fatalf("redacted_because: %v", body)
		}

		// rooms [] is every room bob is in, as Draupnir asks.
		id = startRedaction(t, s, admin, s.UserID("bob"), map[string]any{"rooms": []string{}})
		if st := waitRedaction(t, s, admin, id); st["status"] != "complete" {
			t.Fatalf("status: %v", st)
		}
		if got := bodies(t, s, alice, room1); got[spam1] != "" || got[fine] != "fine" {
			t.Fatalf("room1 after all rooms: %v", got)
		}
		if got := bodies(t, s, alice, room2); got[spam3] != "" {
			t.Fatalf("room2 after all rooms: %v", got)
		}

		// use_admin: root is in none of alice's rooms, so every redaction
		// fails and is reported; nothing is redacted.
		keep := sentID(t, s, alice, room2, "keep")
		id = startRedaction(t, s, admin, s.UserID("alice"), map[string]any{"rooms": []string{room2}, "use_admin": true})
		st := waitRedaction(t, s, admin, id)
		if failed, _ := st["failed_redactions"].(map[string]any); st["status"] != "complete" || failed[keep] == nil {
			t.Fatalf("use_admin without power: %v", st)
		}
		if got := bodies(t, s, alice, room2); got[keep] != "keep" {
			t.Fatalf("use_admin redacted anyway: %v", got)
		}

		path := admBase + "/user/" + url.PathEscape(s.UserID("bob")) + "/redact"
		for _, c := range []struct {
			what, path string
			body       any
			status     int
			code       string
		}{
			{"no rooms", path, map[string]any{}, http.StatusBadRequest, "M_MISSING_PARAM"},
			{"rooms not a list", path, map[string]any{"rooms": "x"}, http.StatusBadRequest, "M_BAD_JSON"},
			{"rooms null", path, map[string]any{"rooms": nil}, http.StatusBadRequest, "M_BAD_JSON"},
			{"not a room ID", path, map[string]any{"rooms": []string{"nope"}}, http.StatusBadRequest, "M_INVALID_PARAM"},
			{"limit 0", path, map[string]any{"rooms": []string{}, "limit": 0}, http.StatusBadRequest, "M_INVALID_PARAM"},
			{"limit not a number", path, map[string]any{"rooms": []string{}, "limit": "5"}, http.StatusBadRequest, "M_INVALID_PARAM"},
			{"reason not a string", path, map[string]any{"rooms": []string{}, "reason": 5}, http.StatusBadRequest, "M_BAD_JSON"},
			{"use_admin not a boolean", path, map[string]any{"rooms": []string{}, "use_admin": "yes"}, http.StatusBadRequest, "M_BAD_JSON"},
			{"not JSON", path, "{", http.StatusBadRequest, "M_NOT_JSON"},
			{"not a user ID", admBase + "/user/bob/redact", map[string]any{"rooms": []string{}}, http.StatusBadRequest, "M_INVALID_PARAM"},
			{"unknown local user", admBase + "/user/" + url.PathEscape(s.UserID("nobody")) + "/redact", map[string]any{"rooms": []string{}}, http.StatusNotFound, "M_NOT_FOUND"},
		} {
			status, body := s.Do(t, "POST", c.path, admin, c.body)
			testserver.WantError(t, c.what, status, body, c.status, c.code)
		}
		status, body = s.Do(t, "GET", admBase+"/user/redact_status/nope", admin, nil)
		testserver.WantError(t, "unknown redact ID", status, body, http.StatusNotFound, "M_NOT_FOUND")

		// Non-admins are refused, and their attempt starts nothing.
		status, body = s.Do(t, "POST", path, alice, map[string]any{"rooms": []string{}})
		testserver.WantError(t, "non-admin redact", status, body, http.StatusForbidden, "M_FORBIDDEN")
		status, body = s.Do(t, "GET", admBase+"/user/redact_status/"+id, alice, nil)
		testserver.WantError(t, "non-admin redact_status", status, body, http.StatusForbidden, "M_FORBIDDEN")
	})
}

// TestAdminJoinUser covers POST /_synapse/admin/v1/join/{roomIdOrAlias}:
// a public room is joined directly; a private one after the admin's
// invite, which needs the admin in the room; aliases resolve; bad
// requests and non-admins are refused.
func TestAdminJoinUser(t *testing.T) {
	testserver.EachEngine(t, withSecret, func(t *testing.T, s *testserver.Server) {
		admin := s.RegisterAdmin("root", "root password").AccessToken
		alice := userToken(t, s, admin, "alice", "alice pw")
		userToken(t, s, admin, "carol", "carol pw")
		carol := s.UserID("carol")
		membership := func(roomID string) any {
			t.Helper()
			status, body := s.Do(t, "GET", adminUserPath(s, "carol", "/memberships"), admin, nil)
			testserver.WantStatus(t, "memberships", status, body, http.StatusOK)
			return body["memberships"].(map[string]any)[roomID]
		}
		join := func(room string, body any) (int, map[string]any) {
			return s.Do(t, "POST", admBase+"/join/"+url.PathEscape(room), admin, body)
		}

		// Public, the admin not in it: carol joins without an invite.
		public := publicRoom(t, s, alice)
		status, body := join(public, map[string]any{"user_id": carol})
		testserver.WantStatus(t, "join public", status, body, http.StatusOK)
		if body["room_id"] != public || membership(public) != "join" {
			t.Fatalf("public: %v, membership %v", body, membership(public))
		}

		// Private, the admin not in it: the admin's invite is refused.
		status, body = s.Do(t, "POST", "/_matrix/client/v3/createRoom", alice, map[string]any{"preset": "private_chat"})
		testserver.WantStatus(t, "private room", status, body, http.StatusOK)
		private := body["room_id"].(string)
		status, body = join(private, map[string]any{"user_id": carol})
		testserver.WantError(t, "private, admin not in it", status, body, http.StatusForbidden, "M_FORBIDDEN")
		if m := membership(private); m != nil {
			t.Fatalf("carol is %v in the private room", m)
		}

		// Private, the admin's own, by alias: invited, then joined.
		status, body = s.Do(t, "POST", "/_matrix/client/v3/createRoom", admin, map[string]any{"preset": "private_chat", "room_alias_name": "hideout"})
		testserver.WantStatus(t, "admin's room", status, body, http.StatusOK)
		own := body["room_id"].(string)
		status, body = join("#hideout:"+s.Config.ServerName, map[string]any{"user_id": carol})
		testserver.WantStatus(t, "join by alias", status, body, http.StatusOK)
		if body["room_id"] != own || membership(own) != "join" {
			t.Fatalf("by alias: %v, membership %v", body, membership(own))
		}
		// Again: already joined, still fine.
		status, body = join(own, map[string]any{"user_id": carol})
		testserver.WantStatus(t, "join again", status, body, http.StatusOK)

		for _, c := range []struct {
			what, room string
			body       any
			status     int
			code       string
		}{
			{"no user_id", own, map[string]any{}, http.StatusBadRequest, "M_MISSING_PARAM"},
			{"user_id not a string", own, map[string]any{"user_id": 5}, http.StatusBadRequest, "M_BAD_JSON"},
			{"not a user ID", own, map[string]any{"user_id": "carol"}, http.StatusBadRequest, "M_INVALID_PARAM"},
			{"remote user", own, map[string]any{"user_id": "@x:elsewhere.test"}, http.StatusBadRequest, "M_INVALID_PARAM"},
			{"unknown user", own, map[string]any{"user_id": s.UserID("nobody")}, http.StatusNotFound, "M_NOT_FOUND"},
			{"unknown room", "!nope:" + s.Config.ServerName, map[string]any{"user_id": carol}, http.StatusNotFound, "M_NOT_FOUND"},
			{"unknown alias", "#nope:" + s.Config.ServerName, map[string]any{"user_id": carol}, http.StatusNotFound, "M_NOT_FOUND"},
			{"not a room", "nope", map[string]any{"user_id": carol}, http.StatusBadRequest, "M_INVALID_PARAM"},
		} {
			status, body := join(c.room, c.body)
			testserver.WantError(t, c.what, status, body, c.status, c.code)
		}

		status, body = s.Do(t, "POST", admBase+"/join/"+url.PathEscape(public), alice, map[string]any{"user_id": s.UserID("root")})
		testserver.WantError(t, "non-admin join", status, body, http.StatusForbidden, "M_FORBIDDEN")
	})
}

// TestAdminCreateDevice covers POST /_synapse/admin/v2/users/{userId}/devices
// and the user list's not_user_type.
func TestAdminCreateDevice(t *testing.T) {
	testserver.EachEngine(t, withSecret, func(t *testing.T, s *testserver.Server) {
		admin := s.RegisterAdmin("root", "root password").AccessToken
		alice := userToken(t, s, admin, "alice", "alice pw")
		path := adminUserPath(s, "alice", "/devices")
		path = "/_synapse/admin/v2" + path[len(admBase):]
		deviceIDs := func() map[string]bool {
			t.Helper()
			status, body := s.Do(t, "GET", path, admin, nil)
			testserver.WantStatus(t, "devices", status, body, http.StatusOK)
			out := map[string]bool{}
			for _, d := range body["devices"].([]any) {
				out[d.(map[string]any)["device_id"].(string)] = true
			}
			return out
		}
		before := len(deviceIDs())
		for range 2 { // the second time the device exists: still 201
			status, body := s.Do(t, "POST", path, admin, map[string]any{"device_id": "BRIDGE"})
			testserver.WantStatus(t, "create device", status, body, http.StatusCreated)
		}
		if got := deviceIDs(); !got["BRIDGE"] || len(got) != before+1 {
			t.Fatalf("devices: %v", got)
		}
		for _, c := range []struct {
			what, path string
			body       any
			status     int
			code       string
		}{
			{"no device_id", path, map[string]any{}, http.StatusBadRequest, "M_MISSING_PARAM"},
			{"device_id not a string", path, map[string]any{"device_id": 5}, http.StatusBadRequest, "M_INVALID_PARAM"},
			{"empty device_id", path, map[string]any{"device_id": ""}, http.StatusBadRequest, "M_INVALID_PARAM"},
			{"remote user", "/_synapse/admin/v2/users/" + url.PathEscape("@x:elsewhere.test") + "/devices", map[string]any{"device_id": "X"}, http.StatusBadRequest, "M_INVALID_PARAM"},
			{"unknown user", "/_synapse/admin/v2/users/" + url.PathEscape(s.UserID("nobody")) + "/devices", map[string]any{"device_id": "X"}, http.StatusNotFound, "M_NOT_FOUND"},
		} {
			status, body := s.Do(t, "POST", c.path, admin, c.body)
			testserver.WantError(t, c.what, status, body, c.status, c.code)
		}
		status, body := s.Do(t, "POST", path, alice, map[string]any{"device_id": "MINE"})
		testserver.WantError(t, "non-admin", status, body, http.StatusForbidden, "M_FORBIDDEN")
		if deviceIDs()["MINE"] {
			t.Fatal("a non-admin created a device")
		}

		// not_user_type: bots out; "" leaves out users with no type.
		putUser(t, s, admin, "robot", map[string]any{"password": "robot pw", "user_type": "bot"}, http.StatusCreated)
		names := func(query string) map[string]bool {
			t.Helper()
			status, body := s.Do(t, "GET", admV2Users+"?"+query, admin, nil)
			testserver.WantStatus(t, "list "+query, status, body, http.StatusOK)
			out := map[string]bool{}
			for _, u := range body["users"].([]any) {
				out[u.(map[string]any)["name"].(string)] = true
			}
			return out
		}
		if got := names("not_user_type=bot"); got[s.UserID("robot")] || !got[s.UserID("alice")] {
			t.Fatalf("not_user_type=bot: %v", got)
		}
		if got := names("not_user_type="); !got[s.UserID("robot")] || got[s.UserID("alice")] || len(got) != 1 {
			t.Fatalf("not_user_type empty: %v", got)
		}
		if got := names("not_user_type=bot&not_user_type="); len(got) != 0 {
			t.Fatalf("both: %v", got)
		}
		if got := names(""); !got[s.UserID("robot")] || !got[s.UserID("alice")] {
			t.Fatalf("no filter: %v", got)
		}
		status, body = s.Do(t, "GET", admV2Users+"?not_user_type=%00", admin, nil)
		testserver.WantError(t, "not_user_type not text", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
	})
}

// TestAdminUserRoomCounts covers GET .../users/{userId}/sent_invite_count,
// .../cumulative_joined_room_count and GET /_synapse/admin/v1/fetch_event/{eventId}.
func TestAdminUserRoomCounts(t *testing.T) {
	testserver.EachEngine(t, withSecret, func(t *testing.T, s *testserver.Server) {
		admin := s.RegisterAdmin("root", "root password").AccessToken
		alice := userToken(t, s, admin, "alice", "alice pw")
		bob := userToken(t, s, admin, "bob", "bob pw")
		userToken(t, s, admin, "carol", "carol pw")
		room1, room2 := publicRoom(t, s, alice), publicRoom(t, s, alice)
		for _, invitee := range []string{"bob", "carol"} {
			status, body := s.Do(t, "POST", "/_matrix/client/v3/rooms/"+url.PathEscape(room1)+"/invite", alice, map[string]any{"user_id": s.UserID(invitee)})
			testserver.WantStatus(t, "invite", status, body, http.StatusOK)
		}
		joinRoom(t, s, bob, room1)
		joinRoom(t, s, bob, room2)
		status, body := s.Do(t, "POST", "/_matrix/client/v3/rooms/"+url.PathEscape(room2)+"/leave", bob, map[string]any{})
		testserver.WantStatus(t, "leave", status, body, http.StatusOK)

		get := func(path string, token string) (int, map[string]any) { return s.Do(t, "GET", path, token, nil) }
		status, body = get(adminUserPath(s, "alice", "/sent_invite_count"), admin)
		if status != http.StatusOK || body["invite_count"] != float64(2) {
			t.Fatalf("alice's invites: %d %v", status, body)
		}
		status, body = get(adminUserPath(s, "alice", "/sent_invite_count?from_ts=99999999999999"), admin)
		if status != http.StatusOK || body["invite_count"] != float64(0) {
			t.Fatalf("alice's invites from the future: %d %v", status, body)
		}
		status, body = get(adminUserPath(s, "bob", "/sent_invite_count"), admin)
		if status != http.StatusOK || body["invite_count"] != float64(0) {
			t.Fatalf("bob's invites: %d %v", status, body)
		}
		status, body = get(adminUserPath(s, "bob", "/cumulative_joined_room_count"), admin)
		if status != http.StatusOK || body["cumulative_joined_room_count"] != float64(2) {
			t.Fatalf("bob's rooms (one left): %d %v", status, body)
		}
		status, body = get(adminUserPath(s, "carol", "/cumulative_joined_room_count"), admin)
		if status != http.StatusOK || body["cumulative_joined_room_count"] != float64(0) {
			t.Fatalf("carol's rooms (invited only): %d %v", status, body)
		}

		msg := sentID(t, s, bob, room1, "hello")
		status, body = get(admBase+"/fetch_event/"+url.PathEscape(msg), admin)
		testserver.WantStatus(t, "fetch_event", status, body, http.StatusOK)
		if ev, _ := body["event"].(map[string]any); ev["event_id"] != msg || ev["room_id"] != room1 || ev["sender"] != s.UserID("bob") {
			t.Fatalf("fetch_event: %v", body)
		}

		for _, c := range []struct {
			what, path string
			status     int
			code       string
		}{
			{"from_ts negative", adminUserPath(s, "alice", "/sent_invite_count?from_ts=-1"), http.StatusBadRequest, "M_INVALID_PARAM"},
			{"from_ts not a number", adminUserPath(s, "alice", "/sent_invite_count?from_ts=x"), http.StatusBadRequest, "M_INVALID_PARAM"},
			{"invites of not a user ID", admBase + "/users/bob/sent_invite_count", http.StatusBadRequest, "M_INVALID_PARAM"},
			{"rooms of not a user ID", admBase + "/users/bob/cumulative_joined_room_count", http.StatusBadRequest, "M_INVALID_PARAM"},
			{"unknown event", admBase + "/fetch_event/" + url.PathEscape("$nope"), http.StatusNotFound, "M_NOT_FOUND"},
			{"not an event ID", admBase + "/fetch_event/nope", http.StatusBadRequest, "M_INVALID_PARAM"},
		} {
			status, body := get(c.path, admin)
			testserver.WantError(t, c.what, status, body, c.status, c.code)
		}
		for _, path := range []string{adminUserPath(s, "alice", "/sent_invite_count"), adminUserPath(s, "bob", "/cumulative_joined_room_count"),
			admBase + "/fetch_event/" + url.PathEscape(msg)} {
			status, body := get(path, bob)
			testserver.WantError(t, "non-admin "+path, status, body, http.StatusForbidden, "M_FORBIDDEN")
		}
	})
}

// TestAdminScheduledTasks covers GET /_synapse/admin/v1/scheduled_tasks:
// room deletions and user redactions listed, with their filters.
func TestAdminScheduledTasks(t *testing.T) {
	testserver.EachEngine(t, withSecret, func(t *testing.T, s *testserver.Server) {
		admin := s.RegisterAdmin("root", "root password").AccessToken
		alice := userToken(t, s, admin, "alice", "alice pw")
		room := publicRoom(t, s, alice)
		sentID(t, s, alice, room, "hi")
		redactID := startRedaction(t, s, admin, s.UserID("alice"), map[string]any{"rooms": []string{room}})
		waitRedaction(t, s, admin, redactID)
		status, body := s.Do(t, "DELETE", "/_synapse/admin/v2/rooms/"+url.PathEscape(room), admin, map[string]any{})
		testserver.WantStatus(t, "delete room", status, body, http.StatusOK)
		deleteID := body["delete_id"].(string)
		for {
			status, body = s.Do(t, "GET", "/_synapse/admin/v2/rooms/delete_status/"+deleteID, admin, nil)
			testserver.WantStatus(t, "delete_status", status, body, http.StatusOK)
			if body["status"] == "complete" || body["status"] == "failed" {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		tasks := func(query string) map[string]map[string]any {
			t.Helper()
			status, body := s.Do(t, "GET", admBase+"/scheduled_tasks?"+query, admin, nil)
			testserver.WantStatus(t, "scheduled_tasks "+query, status, body, http.StatusOK)
			out := map[string]map[string]any{}
			for _, x := range body["scheduled_tasks"].([]any) {
				task := x.(map[string]any)
				out[task["id"].(string)] = task
			}
			return out
		}
		all := tasks("")
		if r := all[redactID]; r["action"] != "redact_all_events" || r["resource_id"] != s.UserID("alice") || r["status"] != "complete" || r["timestamp_ms"].(float64) <= 0 {
			t.Fatalf("redaction task: %v", all)
		}
		if d := all[deleteID]; d["action"] != "shutdown_and_purge_room" || d["resource_id"] != room || d["status"] != "complete" {
			t.Fatalf("deletion task: %v", all)
		}
		if got := tasks("action_name=redact_all_events"); len(got) != 1 || got[redactID] == nil {
			t.Fatalf("action_name: %v", got)
		}
		if got := tasks("resource_id=" + url.QueryEscape(room)); len(got) != 1 || got[deleteID] == nil {
			t.Fatalf("resource_id: %v", got)
		}
		if got := tasks("job_status=failed"); len(got) != 0 {
			t.Fatalf("job_status=failed: %v", got)
		}
		if got := tasks("max_timestamp=1"); len(got) != 0 {
			t.Fatalf("max_timestamp=1: %v", got)
		}
		status, body = s.Do(t, "GET", admBase+"/scheduled_tasks?job_status=sleeping", admin, nil)
		testserver.WantError(t, "bad job_status", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		status, body = s.Do(t, "GET", admBase+"/scheduled_tasks?max_timestamp=x", admin, nil)
		testserver.WantError(t, "bad max_timestamp", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		status, body = s.Do(t, "GET", admBase+"/scheduled_tasks", alice, nil)
		testserver.WantError(t, "non-admin", status, body, http.StatusForbidden, "M_FORBIDDEN")
	})
}
