package testserver

import (
	"context"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// SyncUntil long-polls a client's /sync from since until ok accepts a
// response and returns its next_batch; it fails the test after 20 s,
// naming what was awaited.
func SyncUntil(t testing.TB, c *mautrix.Client, since, what string, ok func(*mautrix.RespSync) bool) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := c.FullSyncRequest(context.Background(), mautrix.ReqSync{Timeout: 1000, Since: since})
		if err != nil {
			t.Fatalf("%s: sync: %v", c.UserID, err)
		}
		since = resp.NextBatch
		if ok(resp) {
			return since
		}
	}
	t.Fatalf("%s never saw %s", c.UserID, what)
	return ""
}

// Ephemeral are a joined room's ephemeral events of one type in a /sync
// response, their content parsed.
func Ephemeral(resp *mautrix.RespSync, roomID id.RoomID, typ event.Type) []*event.Event {
	var out []*event.Event
	if room, ok := resp.Rooms.Join[roomID]; ok {
		for _, ev := range room.Ephemeral.Events {
			if ev.Type == typ {
				_ = ev.Content.ParseRaw(ev.Type)
				out = append(out, ev)
			}
		}
	}
	return out
}

// JoinedEvents are a joined room's state and timeline events in a /sync
// response; a response without the room (an incremental sync that woke
// for something else) has none.
func JoinedEvents(resp *mautrix.RespSync, roomID id.RoomID) (state, timeline []*event.Event) {
	room, ok := resp.Rooms.Join[roomID]
	if !ok || room == nil {
		return nil, nil
	}
	return room.State.Events, room.Timeline.Events
}
