package admin_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// setTaskStatus opens the stopped server's database and puts a job back
// in a status, as a stop in the middle of it leaves it (with the result
// recorded so far if keepResult, else none).
func setTaskStatus(t *testing.T, s *testserver.Server, id, status string, keepResult bool) {
	t.Helper()
	db, err := store.Open(context.Background(), s.Config.Database.URL, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	row, err := db.Task(context.Background(), id)
	if err != nil {
		t.Fatalf("task %s: %v", id, err)
	}
	row.Status, row.Error = status, ""
	if !keepResult {
		row.Result = ""
	}
	if err := db.UpdateTask(context.Background(), row); err != nil {
		t.Fatal(err)
	}
}

// TestAdminJobsSurviveRestart: the admin API's background jobs are kept
// in the database (scheduled_tasks). After a restart a finished job's
// status is still served by its status endpoint and the scheduled tasks
// list; a job left running (active) or queued (scheduled) by the stop is
// taken up again and completes; a job the server cannot read is marked
// failed with why instead of staying queued.
func TestAdminJobsSurviveRestart(t *testing.T) {
	testserver.EachEngine(t, withSecret, func(t *testing.T, s *testserver.Server) {
		admin := s.RegisterAdmin("root", "root password").AccessToken
		alice := userToken(t, s, admin, "alice", "alice pw")
		bob := userToken(t, s, admin, "bob", "bob pw")
		room := publicRoom(t, s, alice)
		joinRoom(t, s, bob, room)
		spam1 := sentID(t, s, bob, room, "spam 1")
		redactID := startRedaction(t, s, admin, s.UserID("bob"), map[string]any{"rooms": []string{room}})
		if st := waitRedaction(t, s, admin, redactID); st["status"] != "complete" {
			t.Fatalf("redaction: %v", st)
		}
		keep := sentID(t, s, alice, room, "keep")
		purgeID := func() string {
			status, body := s.Do(t, "POST", admBase+"/purge_history/"+url.PathEscape(room), admin, map[string]any{"purge_up_to_event_id": keep})
			testserver.WantStatus(t, "purge_history", status, body, http.StatusOK)
			return body["purge_id"].(string)
		}()
		for {
			status, body := s.Do(t, "GET", admBase+"/purge_history_status/"+purgeID, admin, nil)
			testserver.WantStatus(t, "purge status", status, body, http.StatusOK)
			if body["status"] == "complete" {
				break
			}
			if body["status"] != "active" {
				t.Fatalf("purge: %v", body)
			}
			time.Sleep(20 * time.Millisecond)
		}
		// A deletion without purge: the local members leave room2.
		room2 := publicRoom(t, s, alice)
		status, body := s.Do(t, "DELETE", "/_synapse/admin/v2/rooms/"+url.PathEscape(room2), admin, map[string]any{"purge": false})
		testserver.WantStatus(t, "delete room2", status, body, http.StatusOK)
		deleteID := body["delete_id"].(string)
		waitDelete := func() map[string]any {
			t.Helper()
			for {
				status, body := s.Do(t, "GET", "/_synapse/admin/v2/rooms/delete_status/"+deleteID, admin, nil)
				testserver.WantStatus(t, "delete_status", status, body, http.StatusOK)
				if body["status"] == "complete" || body["status"] == "failed" {
					return body
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		if st := waitDelete(); st["status"] != "complete" {
			t.Fatalf("deletion: %v", st)
		}
		joined := func() []any {
			t.Helper()
			status, body := s.Do(t, "GET", "/_matrix/client/v3/joined_rooms", alice, nil)
			testserver.WantStatus(t, "joined_rooms", status, body, http.StatusOK)
			return body["joined_rooms"].([]any)
		}
		if slices.Contains(joined(), any(room2)) {
			t.Fatal("alice still in the deleted room2")
		}

		// New work for the two jobs to do when they run again: alice back
		// in room2, bob's new spam.
		joinRoom(t, s, alice, room2)
		spam2 := sentID(t, s, bob, room, "spam 2")

		// The stop interrupts the redaction (active) and finds the
		// deletion queued (scheduled); a third job is unreadable.
		s.Stop()
		setTaskStatus(t, s, redactID, "active", false)
		setTaskStatus(t, s, deleteID, "scheduled", false)
		func() {
			db, err := store.Open(context.Background(), s.Config.Database.URL, 2)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			now := time.Now().UnixMilli()
			if err := db.InsertTask(context.Background(), store.TaskRow{ID: "futurejob", Action: "delete_old_things", Status: "scheduled",
				TimestampMS: now, QueuedTS: now, ResourceID: "x", Params: "{}"}); err != nil {
				t.Fatal(err)
			}
		}()
		s.Restart()

		// The finished purge is still told.
		status, body = s.Do(t, "GET", admBase+"/purge_history_status/"+purgeID, admin, nil)
		testserver.WantStatus(t, "purge status after restart", status, body, http.StatusOK)
		if body["status"] != "complete" {
			t.Fatalf("purge after restart: %v", body)
		}
		// Both interrupted jobs complete, doing the work left.
		if st := waitRedaction(t, s, admin, redactID); st["status"] != "complete" {
			t.Fatalf("resumed redaction: %v", st)
		}
		got := bodies(t, s, alice, room)
		if got[spam1] != "" || got[spam2] != "" || got[keep] != "keep" {
			t.Fatalf("after the resumed redaction: %v", got)
		}
		if st := waitDelete(); st["status"] != "complete" {
			t.Fatalf("resumed deletion: %v", st)
		}
		if slices.Contains(joined(), any(room2)) {
			t.Fatal("the resumed deletion left alice in room2")
		}
		status, body = s.Do(t, "GET", "/_synapse/admin/v2/rooms/"+url.PathEscape(room2)+"/delete_status", admin, nil)
		testserver.WantStatus(t, "delete_status by room", status, body, http.StatusOK)
		if res := body["results"].([]any); len(res) != 1 || res[0].(map[string]any)["delete_id"] != deleteID {
			t.Fatalf("delete_status by room: %v", body)
		}

		// The unreadable job failed, saying why; the list has every job.
		var tasks map[string]map[string]any
		for {
			status, body = s.Do(t, "GET", admBase+"/scheduled_tasks", admin, nil)
			testserver.WantStatus(t, "scheduled_tasks", status, body, http.StatusOK)
			tasks = map[string]map[string]any{}
			for _, x := range body["scheduled_tasks"].([]any) {
				task := x.(map[string]any)
				tasks[task["id"].(string)] = task
			}
			if tasks["futurejob"]["status"] != "scheduled" {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if f := tasks["futurejob"]; f["status"] != "failed" || f["error"] == nil {
			t.Fatalf("unreadable job: %v", f)
		}
		if tasks[purgeID]["action"] != "purge_history" || tasks[purgeID]["status"] != "complete" ||
			tasks[redactID]["status"] != "complete" || tasks[deleteID]["status"] != "complete" {
			t.Fatalf("scheduled_tasks after restart: %v", tasks)
		}
		if r, _ := tasks[deleteID]["result"].(map[string]any); r == nil || !slices.Contains(r["kicked_users"].([]any), any(s.UserID("alice"))) {
			t.Fatalf("deletion result: %v", tasks[deleteID])
		}
		status, body = s.Do(t, "GET", admBase+"/scheduled_tasks?job_status=failed", admin, nil)
		testserver.WantStatus(t, "scheduled_tasks failed", status, body, http.StatusOK)
		if l := body["scheduled_tasks"].([]any); len(l) != 1 || l[0].(map[string]any)["id"] != "futurejob" {
			t.Fatalf("job_status=failed: %v", body)
		}

		// Hostile IDs and filters find no job, and are never a server error.
		for _, path := range []string{
			"/_synapse/admin/v2/rooms/delete_status/%00", "/_synapse/admin/v2/rooms/delete_status/%ff%fe",
			"/_synapse/admin/v2/rooms/%21a%00b/delete_status", admBase + "/purge_history_status/%00",
			admBase + "/user/redact_status/%ff", admBase + "/purge_history_status/" + redactID,
		} {
			// The router refuses some (400 M_INVALID_PARAM); the rest are
			// not found.
			status, body = s.Do(t, "GET", path, admin, nil)
			if !(status == http.StatusNotFound && body["errcode"] == "M_NOT_FOUND" || status == http.StatusBadRequest && body["errcode"] == "M_INVALID_PARAM") {
				t.Fatalf("%s: %d %v", path, status, body)
			}
		}
		for _, query := range []string{"action_name=%00", "resource_id=%ff", "resource_id=" + strings.Repeat("x", 1<<16)} {
			status, body = s.Do(t, "GET", admBase+"/scheduled_tasks?"+query, admin, nil)
			if status == http.StatusOK {
				if l := body["scheduled_tasks"].([]any); len(l) != 0 {
					t.Fatalf("filter %.40s matched: %v", query, l)
				}
			} else if status != http.StatusBadRequest || body["errcode"] != "M_INVALID_PARAM" {
				t.Fatalf("filter %.40s: %d %v", query, status, body)
			}
		}
	})
}

// TestAdminDeletionResumesIntoItsNewRoom: a deletion with
// new_room_user_id interrupted after it created the new room moves the
// members to that room when it runs again, instead of creating another.
func TestAdminDeletionResumesIntoItsNewRoom(t *testing.T) {
	testserver.EachEngine(t, withSecret, func(t *testing.T, s *testserver.Server) {
		adminClient := s.RegisterAdmin("root", "root password")
		admin := adminClient.AccessToken
		alice := userToken(t, s, admin, "alice", "alice pw")
		room := publicRoom(t, s, alice)
		status, body := s.Do(t, "DELETE", "/_synapse/admin/v2/rooms/"+url.PathEscape(room), admin,
			map[string]any{"purge": false, "new_room_user_id": s.UserID("root")})
		testserver.WantStatus(t, "delete", status, body, http.StatusOK)
		deleteID := body["delete_id"].(string)
		wait := func() map[string]any {
			t.Helper()
			for {
				status, body := s.Do(t, "GET", "/_synapse/admin/v2/rooms/delete_status/"+deleteID, admin, nil)
				testserver.WantStatus(t, "delete_status", status, body, http.StatusOK)
				if body["status"] == "complete" || body["status"] == "failed" {
					return body
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		st := wait()
		newRoom, _ := st["shutdown_room"].(map[string]any)["new_room_id"].(string)
		if st["status"] != "complete" || newRoom == "" {
			t.Fatalf("deletion: %v", st)
		}
		joined := func(token string) []any {
			t.Helper()
			status, body := s.Do(t, "GET", "/_matrix/client/v3/joined_rooms", token, nil)
			testserver.WantStatus(t, "joined_rooms", status, body, http.StatusOK)
			return body["joined_rooms"].([]any)
		}
		joinRoom(t, s, alice, room)
		s.Stop()
		setTaskStatus(t, s, deleteID, "active", true)
		s.Restart()
		st = wait()
		if st["status"] != "complete" || st["shutdown_room"].(map[string]any)["new_room_id"] != newRoom {
			t.Fatalf("resumed deletion: %v, want new room %s", st, newRoom)
		}
		if got := joined(alice); len(got) != 1 || got[0] != newRoom {
			t.Fatalf("alice's rooms after the resumed deletion: %v, want only %s", got, newRoom)
		}
		if got := joined(admin); len(got) != 1 || got[0] != newRoom {
			t.Fatalf("root's rooms: %v: a second new room was made", got)
		}
	})
}
