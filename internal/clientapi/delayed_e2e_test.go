package clientapi_test

import (
	"context"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testserver"
)

const delayedBase = "/_matrix/client/unstable/org.matrix.msc4140/delayed_events"

// delayedRoom makes a room of alice's, which bob joins, and a client of each.
func delayedRoom(t *testing.T, s *testserver.Server) (alice, bob *mautrix.Client, roomID id.RoomID) {
	t.Helper()
	ctx := context.Background()
	alice, bob = s.Register("alice", "pw-alice-1"), s.Register("bob", "pw-bob-1")
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat",
		// bob may set the state the tests race alice's delayed state with.
		PowerLevelOverride: &event.PowerLevelsEventContent{StateDefaultPtr: ptr(0)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.JoinRoomByID(ctx, room.RoomID); err != nil {
		t.Fatal(err)
	}
	return alice, bob, room.RoomID
}

func ptr[T any](v T) *T { return &v }

// sendDelayed schedules a message (stateKey nil) or a state event and
// returns its delay ID.
func sendDelayed(t *testing.T, s *testserver.Server, c *mautrix.Client, roomID id.RoomID, typ string, stateKey *string, content map[string]any, delayMS int64) string {
	t.Helper()
	path := "/_matrix/client/v3/rooms/" + url.PathEscape(string(roomID))
	if stateKey == nil {
		path += "/send/" + typ + "/txn" + strconv.FormatInt(int64(len(content))+delayMS, 10) + typ
	} else {
		path += "/state/" + typ + "/" + url.PathEscape(*stateKey)
	}
	status, body := s.Do(t, http.MethodPut, path+"?org.matrix.msc4140.delay="+strconv.FormatInt(delayMS, 10), c.AccessToken, content)
	testserver.WantStatus(t, "delayed "+typ, status, body, http.StatusOK)
	id, _ := body["delay_id"].(string)
	if id == "" || body["event_id"] != nil {
		t.Fatalf("delayed %s: answer %v, want a delay_id only", typ, body)
	}
	return id
}

// listDelayed answers GET .../delayed_events with a query.
func listDelayed(t *testing.T, s *testserver.Server, c *mautrix.Client, query string) map[string]any {
	t.Helper()
	status, body := s.Do(t, http.MethodGet, delayedBase+query, c.AccessToken, nil)
	testserver.WantStatus(t, "list delayed events", status, body, http.StatusOK)
	return body
}

// awaitFinalised waits until delayID is listed as finalised: a fired
// event reaches the room (and clients) a moment before its delayed
// entry is marked sent, since the mark needs the event's ID.
func awaitFinalised(t *testing.T, s *testserver.Server, c *mautrix.Client, delayID string) map[string]map[string]any {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		fin := delayedIDs(listDelayed(t, s, c, "?status=finalised")["finalised"])
		if f, _ := fin[delayID]["finalised"].(map[string]any); f != nil || time.Now().After(deadline) {
			return fin
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func delayedIDs(list any) map[string]map[string]any {
	out := map[string]map[string]any{}
	items, _ := list.([]any)
	for _, it := range items {
		m, _ := it.(map[string]any)
		id, _ := m["delay_id"].(string)
		out[id] = m
	}
	return out
}

func delayedAction(t *testing.T, s *testserver.Server, c *mautrix.Client, delayID, action string) (int, map[string]any) {
	t.Helper()
	return s.Do(t, http.MethodPost, delayedBase+"/"+url.PathEscape(delayID), c.AccessToken, map[string]any{"action": action})
}

// awaitTimeline syncs c until the room's timeline holds an event of typ
// whose content's "n" is n, and returns it.
func awaitTimeline(t *testing.T, c *mautrix.Client, roomID id.RoomID, since string, typ string, n string) (*event.Event, string) {
	t.Helper()
	var found *event.Event
	next := testserver.SyncUntil(t, c, since, typ+" "+n, func(r *mautrix.RespSync) bool {
		if jr, ok := r.Rooms.Join[roomID]; ok {
			for _, ev := range jr.Timeline.Events {
				if ev.Type.Type == typ && ev.Content.Raw["n"] == n {
					found = ev
					return true
				}
			}
		}
		return false
	})
	return found, next
}

// TestDelayedEvents: a delayed message is answered with a delay ID, is
// listed as scheduled, then fires after its delay and is listed as
// finalised with its event ID; a cancelled one never fires (a later
// one fires, it does not); "send" fires at once; "restart" starts the
// delay again; acting on another user's or an unknown delay ID is 404,
// on a finalised one 409; bad actions and delays are refused.
func TestDelayedEvents(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice, bob, roomID := delayedRoom(t, s)
		first, err := alice.SyncRequest(ctx, 0, "", "", false, "")
		if err != nil {
			t.Fatal(err)
		}

		// The event to cancel waits two hours, so that a slow machine
		// cannot see it fire before the cancel (which is then rightly 409).
		cancelled := sendDelayed(t, s, alice, roomID, "com.example.test", nil, map[string]any{"n": "cancelled"}, 7_200_000)
		// A retried request (same transaction ID) schedules nothing new.
		if again := sendDelayed(t, s, alice, roomID, "com.example.test", nil, map[string]any{"n": "cancelled"}, 7_200_000); again != cancelled {
			t.Fatalf("retried delayed send: delay ID %s, want the first's %s", again, cancelled)
		}
		fires := sendDelayed(t, s, alice, roomID, "com.example.test", nil, map[string]any{"n": "fires"}, 600)
		// fires may already have fired on a slow machine: it is then
		// listed as finalised, with the same fields.
		listed := listDelayed(t, s, alice, "")
		sched := delayedIDs(listed["scheduled"])
		both := delayedIDs(listed["finalised"])
		maps.Copy(both, sched)
		if len(both) != 2 || sched[cancelled] == nil || both[fires]["room_id"] != string(roomID) || both[fires]["type"] != "com.example.test" ||
			both[fires]["delay_ms"] != float64(600) || both[fires]["delay"] != float64(600) || both[fires]["delayed_since_ts"] == nil {
			t.Fatalf("listed = %v", listed)
		}
		if _, has := both[fires]["state_key"]; has {
			t.Fatalf("a message's delayed event has a state_key: %v", both[fires])
		}
		legacy := delayedIDs(listDelayed(t, s, alice, "")["delayed_events"])
		if legacy[cancelled] == nil {
			t.Fatalf("delayed_events (the earlier name) = %v", legacy)
		}
		if got := listDelayed(t, s, bob, ""); len(delayedIDs(got["scheduled"])) != 0 {
			t.Fatalf("bob lists alice's delayed events: %v", got)
		}
		status, body := delayedAction(t, s, bob, fires, "cancel")
		testserver.WantError(t, "bob cancels alice's", status, body, http.StatusNotFound, "M_NOT_FOUND")
		status, body = delayedAction(t, s, alice, "syd_nope", "send")
		testserver.WantError(t, "unknown delay ID", status, body, http.StatusNotFound, "M_NOT_FOUND")
		status, body = delayedAction(t, s, alice, fires, "explode")
		testserver.WantError(t, "unknown action", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		status, body = s.Do(t, http.MethodPost, delayedBase+"/"+fires, alice.AccessToken, map[string]any{})
		testserver.WantError(t, "no action", status, body, http.StatusBadRequest, "M_MISSING_PARAM")

		status, body = delayedAction(t, s, alice, cancelled, "cancel")
		testserver.WantStatus(t, "cancel", status, body, http.StatusOK)
		status, body = delayedAction(t, s, alice, cancelled, "restart")
		testserver.WantStatus(t, "restart a cancelled event", status, body, http.StatusConflict)

		// fires fires; the cancelled one never does.
		ev, next := awaitTimeline(t, alice, roomID, first.NextBatch, "com.example.test", "fires")
		if ev.Sender != alice.UserID {
			t.Fatalf("fired event's sender = %s", ev.Sender)
		}
		resp, err := alice.Messages(ctx, roomID, "", "", mautrix.DirectionBackward, nil, 50)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range resp.Chunk {
			if e.Content.Raw["n"] == "cancelled" {
				t.Fatal("the cancelled delayed event was sent")
			}
		}
		fin := awaitFinalised(t, s, alice, fires)
		if f, _ := fin[fires]["finalised"].(map[string]any); f == nil || f["event_id"] != string(ev.ID) || f["finalised_ts"] == nil {
			t.Fatalf("finalised entry of the fired event = %v", fin[fires])
		}
		if f, _ := fin[cancelled]["finalised"].(map[string]any); f == nil || f["event_id"] != nil || f["finalised_ts"] == nil {
			t.Fatalf("finalised entry of the cancelled event = %v", fin[cancelled])
		}
		if only := listDelayed(t, s, alice, "?status=finalised"); only["scheduled"] != nil || only["delayed_events"] != nil {
			t.Fatalf("status=finalised answers more: %v", only)
		}

		// restart moves the delay's start; send fires at once.
		later := sendDelayed(t, s, alice, roomID, "com.example.test", nil, map[string]any{"n": "sent now"}, 3_600_000)
		before := delayedIDs(listDelayed(t, s, alice, "?status=scheduled")["scheduled"])[later]["delayed_since_ts"].(float64)
		status, body = delayedAction(t, s, alice, later, "restart")
		testserver.WantStatus(t, "restart", status, body, http.StatusOK)
		after := delayedIDs(listDelayed(t, s, alice, "?status=scheduled&delay_id="+later)["scheduled"])
		if len(after) != 1 || after[later]["delayed_since_ts"].(float64) < before {
			t.Fatalf("after restart: %v (delayed since %v before)", after, before)
		}
		status, body = delayedAction(t, s, alice, later, "send")
		testserver.WantStatus(t, "send", status, body, http.StatusOK)
		awaitTimeline(t, alice, roomID, next, "com.example.test", "sent now")
		status, body = delayedAction(t, s, alice, later, "send")
		testserver.WantStatus(t, "send a sent event", status, body, http.StatusConflict)

		// Bad delays and the maximum (24 h by default).
		path := "/_matrix/client/v3/rooms/" + url.PathEscape(string(roomID)) + "/send/m.room.message/bad"
		for _, q := range []string{"-1", "soon", "1e3"} {
			status, body = s.Do(t, http.MethodPut, path+q+"?org.matrix.msc4140.delay="+url.QueryEscape(q), alice.AccessToken, map[string]any{"body": "x"})
			testserver.WantError(t, "delay "+q, status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		}
		status, body = s.Do(t, http.MethodPut, path+"max?org.matrix.msc4140.delay=86400001", alice.AccessToken, map[string]any{"body": "x"})
		testserver.WantError(t, "delay over the maximum", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		if body["org.matrix.msc4140.errcode"] != "M_MAX_DELAY_EXCEEDED" || body["org.matrix.msc4140.max_delay"] != float64(86400000) {
			t.Fatalf("delay over the maximum: %v", body)
		}
		// The MSC's stable parameter name is read too.
		status, body = s.Do(t, http.MethodPut, path+"stable?delay=1000000", alice.AccessToken, map[string]any{"body": "x"})
		if status != http.StatusOK || body["delay_id"] == nil {
			t.Fatalf("delay parameter: %d %v", status, body)
		}
	})
}

// TestDelayedStateCancelledByOthers: as Synapse, another user's change
// of the same state cancels a pending delayed state event, the owner's
// own change does not (Element Call sends its member event now and its
// "left" replacement delayed).
func TestDelayedStateCancelledByOthers(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice, bob, roomID := delayedRoom(t, s)
		key := "call"
		own := sendDelayed(t, s, alice, roomID, "org.example.call.member", &key, map[string]any{"n": "left"}, 3_600_000)
		if _, err := alice.SendStateEvent(ctx, roomID, event.NewEventType("org.example.call.member"), key, map[string]any{"n": "joined"}); err != nil {
			t.Fatal(err)
		}
		if sched := delayedIDs(listDelayed(t, s, alice, "")["scheduled"]); sched[own] == nil || sched[own]["state_key"] != key {
			t.Fatalf("alice's own state change cancelled her delayed state event: %v", sched)
		}
		other := "other"
		kept := sendDelayed(t, s, alice, roomID, "org.example.call.member", &other, map[string]any{"n": "kept"}, 3_600_000)
		if _, err := bob.SendStateEvent(ctx, roomID, event.NewEventType("org.example.call.member"), key, map[string]any{"n": "bob"}); err != nil {
			t.Fatal(err)
		}
		sched := delayedIDs(listDelayed(t, s, alice, "")["scheduled"])
		if sched[own] != nil || sched[kept] == nil {
			t.Fatalf("after bob's change of the same state: scheduled %v, want only %s", sched, kept)
		}
		fin := delayedIDs(listDelayed(t, s, alice, "?status=finalised")["finalised"])
		if f, _ := fin[own]["finalised"].(map[string]any); f == nil || f["event_id"] != nil {
			t.Fatalf("cancelled delayed state event: %v", fin[own])
		}
		// Sent now, the kept one sets the state as alice.
		status, body := delayedAction(t, s, alice, kept, "send")
		testserver.WantStatus(t, "send", status, body, http.StatusOK)
		var content map[string]any
		if err := alice.StateEvent(ctx, roomID, event.NewEventType("org.example.call.member"), other, &content); err != nil || content["n"] != "kept" {
			t.Fatalf("state after send: %v, %v", content, err)
		}
	})
}

// TestDelayedEventSurvivesRestart: a delayed event scheduled before a
// restart fires after it.
func TestDelayedEventSurvivesRestart(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice, _, roomID := delayedRoom(t, s)
		first, err := alice.SyncRequest(context.Background(), 0, "", "", false, "")
		if err != nil {
			t.Fatal(err)
		}
		delayID := sendDelayed(t, s, alice, roomID, "com.example.test", nil, map[string]any{"n": "after restart"}, 1500)
		s.Restart()
		s.Repoint(alice)
		ev, _ := awaitTimeline(t, alice, roomID, first.NextBatch, "com.example.test", "after restart")
		fin := awaitFinalised(t, s, alice, delayID)
		if f, _ := fin[delayID]["finalised"].(map[string]any); f == nil || f["event_id"] != string(ev.ID) {
			t.Fatalf("finalised after restart: %v", fin)
		}
	})
}

// TestDelayedEventsOff: with rooms.max_event_delay_ms 0 the delay is
// ignored (the event is sent now), the management endpoints are not
// served and /versions does not advertise MSC4140, as Synapse without
// max_event_delay_duration.
func TestDelayedEventsOff(t *testing.T) {
	s := testserver.Start(t, "", func(c *config.Config) { c.Rooms.MaxEventDelayMS = 0 })
	alice := s.Register("alice", "pw-alice-1")
	room, err := alice.CreateRoom(context.Background(), &mautrix.ReqCreateRoom{})
	if err != nil {
		t.Fatal(err)
	}
	status, body := s.Do(t, http.MethodPut, "/_matrix/client/v3/rooms/"+url.PathEscape(string(room.RoomID))+"/send/m.room.message/t1?org.matrix.msc4140.delay=1000",
		alice.AccessToken, map[string]any{"body": "now", "msgtype": "m.text"})
	if status != http.StatusOK || body["event_id"] == nil || body["delay_id"] != nil {
		t.Fatalf("send with a delay while off: %d %v", status, body)
	}
	status, body = s.Do(t, http.MethodGet, delayedBase, alice.AccessToken, nil)
	testserver.WantError(t, "list while off", status, body, http.StatusNotFound, "M_UNRECOGNIZED")
	_, v := s.Do(t, http.MethodGet, "/_matrix/client/versions", "", nil)
	if f, _ := v["unstable_features"].(map[string]any); f["org.matrix.msc4140"] != false {
		t.Fatalf("unstable_features while off: %v", f)
	}
}

// TestDelayedEventMgmtRateLimit: management requests draw from their own
// bucket (Synapse's rc_delayed_event_mgmt).
func TestDelayedEventMgmtRateLimit(t *testing.T) {
	s := testserver.Start(t, "", func(c *config.Config) {
		c.RateLimit.Enabled = true
		c.RateLimit.DelayedEventMgmt = config.RateLimitBucket{PerSecond: 0.001, Burst: 2}
		c.RateLimit.Register = config.RateLimitBucket{PerSecond: 100, Burst: 100}
	})
	alice, bob := s.Register("alice", "pw-alice-1"), s.Register("bob", "pw-bob-1")
	for range 2 {
		listDelayed(t, s, alice, "")
	}
	status, body := s.Do(t, http.MethodGet, delayedBase, alice.AccessToken, nil)
	testserver.WantError(t, "over the burst", status, body, http.StatusTooManyRequests, "M_LIMIT_EXCEEDED")
	listDelayed(t, s, bob, "")
}
