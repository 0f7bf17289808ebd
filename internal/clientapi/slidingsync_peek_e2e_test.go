package clientapi_test

import (
	"context"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

func worldReadable() []*event.Event {
	return []*event.Event{{Type: event.StateHistoryVisibility, Content: event.Content{Raw: map[string]any{"history_visibility": "world_readable"}}}}
}

func setSpaceChild(t *testing.T, c *mautrix.Client, space, child id.RoomID) {
	t.Helper()
	if _, err := c.SendStateEvent(context.Background(), space, event.StateSpaceChild, child.String(),
		map[string]any{"via": []string{"hs1.test"}}); err != nil {
		t.Fatal(err)
	}
}

// TestSlidingSyncPeekAndSpaces: a room subscription reaches a
// world-readable room the user is not in (peeking: its state and
// timeline, once), not a room whose history is for members only; the
// spaces filter reads the children of spaces the user is in or may
// peek into, and finds nothing in a space it may not see.
func TestSlidingSyncPeekAndSpaces(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice, bob := s.Register("alice", "pw"), s.Register("bob", "pw")
		open := syCreate(t, bob, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "open", InitialState: worldReadable()})
		sySend(t, bob, open, "for anyone")
		closed := syCreate(t, bob, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "closed"})
		sySend(t, bob, closed, "for members")

		sub := func(rooms ...id.RoomID) map[string]any {
			subs := map[string]any{}
			for _, r := range rooms {
				subs[r.String()] = map[string]any{"timeline_limit": 5, "required_state": [][]string{{"m.room.name", ""}, {"m.room.member", "$LAZY"}}}
			}
			return map[string]any{"conn_id": "peek", "room_subscriptions": subs}
		}
		first := ssOK(t, s, alice, "", 0, sub(open, closed, "!nowhere:hs1.test", "not a room"))
		r := first.Rooms[open.String()]
		if r == nil || !r.Initial || r.Name != "open" || !ssHas(r.RequiredState, "m.room.name", "") ||
			!ssHas(r.RequiredState, "m.room.member", string(bob.UserID)) {
			t.Fatalf("world-readable room subscription: %+v", r)
		}
		var bodies []any
		for _, ev := range r.Timeline {
			bodies = append(bodies, ev.Content["body"])
		}
		if len(bodies) == 0 || bodies[len(bodies)-1] != "for anyone" {
			t.Fatalf("peeked timeline: %v", bodies)
		}
		if len(first.Rooms) != 1 {
			t.Fatalf("subscriptions to rooms the user may not read answered: %v", first.Rooms)
		}
		// Sent once; a new message comes alone.
		idle := ssOK(t, s, alice, first.Pos, 0, sub(open, closed))
		if r := idle.Rooms[open.String()]; r != nil && (r.Initial || len(r.Timeline) > 0) {
			t.Fatalf("peeked room sent again: %+v", r)
		}
		sySend(t, bob, open, "news")
		next := ssOK(t, s, alice, idle.Pos, 0, sub(open, closed))
		if r := next.Rooms[open.String()]; r == nil || r.Initial || len(r.Timeline) != 1 || r.Timeline[0].Content["body"] != "news" {
			t.Fatalf("peeked room after a message: %+v", r)
		}

		// Spaces: alice is in "mine" (a child of every space below).
		mine := syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "mine"})
		spaceOf := func(c *mautrix.Client, initial []*event.Event) id.RoomID {
			return syCreate(t, c, &mautrix.ReqCreateRoom{Preset: "public_chat", CreationContent: map[string]any{"type": "m.space"},
				InitialState: initial})
		}
		hidden, peekable, joined := spaceOf(bob, nil), spaceOf(bob, worldReadable()), spaceOf(alice, nil)
		for _, sp := range []id.RoomID{hidden, peekable} {
			setSpaceChild(t, bob, sp, mine)
		}
		setSpaceChild(t, alice, joined, mine)
		count := func(space id.RoomID) int {
			t.Helper()
			body := map[string]any{"conn_id": "spaces-" + space.String(), "lists": map[string]any{"in": map[string]any{
				"ranges": [][]int{{0, 9}}, "timeline_limit": 0, "filters": map[string]any{"spaces": []string{space.String()}}}}}
			return ssOK(t, s, alice, "", 0, body).Lists["in"].Count
		}
		if n := count(hidden); n != 0 {
			t.Fatalf("the spaces filter read a space alice may not see: %d rooms", n)
		}
		if n := count(peekable); n != 1 {
			t.Fatalf("world-readable space: %d rooms, want 1", n)
		}
		if n := count(joined); n != 1 {
			t.Fatalf("joined space: %d rooms, want 1", n)
		}

		// Element X's not_room_types: ["m.space"] leaves alice's space out,
		// also after a restart, when room types come from the store's
		// sliding_sync_room_meta rows rather than memory.
		for range 2 {
			list := roomList(0, 19)
			list["conn_id"] = "types"
			got := ssOK(t, s, alice, "", 0, list)
			if got.Rooms[joined.String()] != nil || got.Rooms[mine.String()] == nil || got.Lists["all_rooms"].Count != 1 {
				t.Fatalf("not_room_types: count %d, rooms %v", got.Lists["all_rooms"].Count, got.Rooms)
			}
			s.Restart()
			s.Repoint(alice)
		}
	})
}
