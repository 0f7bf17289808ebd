package admin_test

import (
	"net/http"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestAdminPurgeHistory: a history purge up to an event keeps local
// users' events unless delete_local_events, and then removes the
// messages before the event (state events stay); its status is told by
// purge ID; bad requests are refused.
func TestAdminPurgeHistory(t *testing.T) {
	testserver.EachEngine(t, openWithSecret, func(t *testing.T, s *testserver.Server) {
		e := newRoomsEnv(t, s)
		room := e.create(e.alice, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Old"})
		old1, old2 := e.send(e.alice, room, "old 1"), e.send(e.alice, room, "old 2")
		keep := e.send(e.alice, room, "keep")
		last := e.send(e.alice, room, "last")
		messages := func() map[string]bool {
			t.Helper()
			ids := map[string]bool{}
			for _, ev := range e.ok("GET", admRooms+"/"+room.String()+"/messages?limit=100", nil)["chunk"].([]any) {
				m := ev.(map[string]any)
				if m["type"] == "m.room.message" {
					ids[m["event_id"].(string)] = true
				}
			}
			return ids
		}
		wait := func(purgeID string) map[string]any {
			t.Helper()
			for {
				st := e.ok("GET", admBase+"/purge_history_status/"+purgeID, nil)
				if st["status"] != "active" {
					return st
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		path := admBase + "/purge_history/" + room.String()

		id1 := e.ok("POST", path, map[string]any{"purge_up_to_event_id": keep.String()})["purge_id"].(string)
		if st := wait(id1); st["status"] != "complete" {
			t.Fatalf("purge keeping local events: %v", st)
		}
		if got := messages(); len(got) != 4 {
			t.Fatalf("local events went without delete_local_events: %v", got)
		}

		id2 := e.ok("POST", path+"/"+keep.String(), map[string]any{"delete_local_events": true})["purge_id"].(string)
		if st := wait(id2); st["status"] != "complete" {
			t.Fatalf("purge: %v", st)
		}
		got := messages()
		if got[old1.String()] || got[old2.String()] || !got[keep.String()] || !got[last.String()] {
			t.Fatalf("after purge: %v", got)
		}
		if d := e.ok("GET", admRooms+"/"+room.String(), nil); d["name"] != "Old" {
			t.Fatalf("state lost: %v", d)
		}
		if _, err := e.alice.GetEvent(t.Context(), room, old1); err == nil {
			t.Fatal("a purged event still loads")
		}
		// The room goes on.
		e.send(e.alice, room, "new")

		other := e.create(e.bob, &mautrix.ReqCreateRoom{Preset: "private_chat"})
		elsewhere := e.send(e.bob, other, "x")
		for _, c := range []struct {
			body   map[string]any
			status int
			code   string
		}{
			{map[string]any{}, http.StatusBadRequest, "M_MISSING_PARAM"},
			{map[string]any{"purge_up_to_event_id": elsewhere.String()}, http.StatusBadRequest, "M_UNKNOWN"},
			{map[string]any{"purge_up_to_event_id": "$nope"}, http.StatusNotFound, "M_NOT_FOUND"},
			{map[string]any{"purge_up_to_ts": "soon"}, http.StatusBadRequest, "M_INVALID_PARAM"},
			{map[string]any{"purge_up_to_ts": 1}, http.StatusBadRequest, "M_UNKNOWN"},
			{map[string]any{"purge_up_to_ts": 1, "delete_local_events": "yes"}, http.StatusBadRequest, "M_BAD_JSON"},
		} {
			status, body := e.do("POST", path, c.body)
			testserver.WantError(t, "purge_history", status, body, c.status, c.code)
		}
		status, body := e.do("POST", admBase+"/purge_history/!unknown:hs1.test", map[string]any{"purge_up_to_ts": 1})
		testserver.WantError(t, "unknown room", status, body, http.StatusNotFound, "M_NOT_FOUND")
		status, body = e.do("GET", admBase+"/purge_history_status/nope", nil)
		testserver.WantError(t, "unknown purge", status, body, http.StatusNotFound, "M_NOT_FOUND")
		status, body = s.Do(t, "POST", path, e.alice.AccessToken, map[string]any{"purge_up_to_ts": 1})
		testserver.WantError(t, "non-admin", status, body, http.StatusForbidden, "M_FORBIDDEN")
		status, body = s.Do(t, "GET", admBase+"/purge_history_status/"+id1, e.alice.AccessToken, nil)
		testserver.WantError(t, "non-admin status", status, body, http.StatusForbidden, "M_FORBIDDEN")
	})
}
