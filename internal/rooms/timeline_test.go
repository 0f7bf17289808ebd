package rooms

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/myelin-chat/myelin/internal/testdb"
)

func eventIDs(evs []*Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.EventID()
	}
	return out
}

// TestTimelineAndEventNear: paging a room's events both ways with a
// filter and history visibility (a non-member of a shared-history room
// sees nothing), and the event nearest a timestamp.
func TestTimelineAndEventNear(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		e, _, _ := newTestEngine(t, dbURL)
		const alice = "@alice:hs1.test"
		roomID, err := e.CreateRoom(ctx, CreateRequest{Creator: alice, Preset: "private_chat"})
		if err != nil {
			t.Fatal(err)
		}
		start := e.Stream().Current()
		var msgs []*Event
		for i := range 4 {
			typ := "m.room.message"
			if i == 2 {
				typ = "m.other"
			}
			ev, err := e.Send(ctx, SendRequest{RoomID: roomID, Sender: alice, Type: typ, Content: json.RawMessage(`{"body":"x"}`)})
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, ev)
		}
		upper := e.Stream().Current()
		onlyMessages := func(ev *Event) bool { return ev.Type() == "m.room.message" }

		page, next, more, err := e.Timeline(ctx, roomID, alice, upper, start, upper, 2, true, onlyMessages)
		if err != nil || !more || !slices.Equal(eventIDs(page), eventIDs([]*Event{msgs[3], msgs[1]})) {
			t.Fatalf("backwards: %v more=%v %v", eventIDs(page), more, err)
		}
		page, _, more, err = e.Timeline(ctx, roomID, alice, next, start, upper, 2, true, onlyMessages)
		if err != nil || more || !slices.Equal(eventIDs(page), eventIDs(msgs[:1])) {
			t.Fatalf("backwards, page 2: %v more=%v %v", eventIDs(page), more, err)
		}
		page, _, _, err = e.Timeline(ctx, roomID, alice, start, NoBound, upper, 10, false, nil)
		if err != nil || !slices.Equal(eventIDs(page), eventIDs(msgs)) {
			t.Fatalf("forwards: %v %v", eventIDs(page), err)
		}
		page, _, _, err = e.Timeline(ctx, roomID, "@eve:hs1.test", upper, NoBound, upper, 10, true, nil)
		if err != nil || len(page) != 0 {
			t.Fatalf("non-member sees %v %v", eventIDs(page), err)
		}

		ts := int64(msgs[1].OriginServerTS())
		ev, err := e.EventNear(ctx, roomID, alice, ts, upper, false)
		if err != nil || ev == nil || int64(ev.OriginServerTS()) < ts {
			t.Fatalf("forward from %d: %v %v", ts, ev, err)
		}
		ev, err = e.EventNear(ctx, roomID, alice, int64(msgs[3].OriginServerTS())+1, upper, false)
		if err != nil || ev != nil {
			t.Fatalf("after the last event: %v %v", ev, err)
		}
		if ev, err = e.EventNear(ctx, roomID, "@eve:hs1.test", ts, upper, true); err != nil || ev != nil {
			t.Fatalf("non-member: %v %v", ev, err)
		}
	})
}
