package clientapi_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

func ctxStateOf(evs []*event.Event, typ event.Type, stateKey string) *event.Event {
	for _, ev := range evs {
		if ev.Type.Type == typ.Type && ev.StateKey != nil && *ev.StateKey == stateKey {
			return ev
		}
	}
	return nil
}

// TestEventContext checks /context: the split of limit around the event,
// the order of both sides, the tokens (which /messages continues from),
// the state at the last event returned, filters with lazy-loaded members,
// and access (403 for outsiders, 404 for an event hidden by history
// visibility).
func TestEventContext(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw")
		bob := s.Register("bob", "pw")
		roomID := relRoom(t, alice, bob)
		if _, err := alice.SendStateEvent(ctx, roomID, event.StateHistoryVisibility, "", map[string]any{"history_visibility": "joined"}); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.SendStateEvent(ctx, roomID, event.StateRoomName, "", map[string]any{"name": "before"}); err != nil {
			t.Fatal(err)
		}
		var m []id.EventID
		for i := 0; i < 7; i++ {
			m = append(m, relSend(t, alice, roomID, event.EventMessage, relText("m"+string(rune('1'+i)))))
		}
		if _, err := alice.SendStateEvent(ctx, roomID, event.StateRoomName, "", map[string]any{"name": "after"}); err != nil {
			t.Fatal(err)
		}

		cx, err := alice.Context(ctx, roomID, m[3], nil, 4)
		if err != nil {
			t.Fatalf("context: %v", err)
		}
		if cx.Event == nil || cx.Event.ID != m[3] || cx.Event.RoomID != roomID {
			t.Fatalf("context event: %+v", cx.Event)
		}
		relSameIDs(t, "events_before", relIDs(cx.EventsBefore), []id.EventID{m[2], m[1]})
		relSameIDs(t, "events_after", relIDs(cx.EventsAfter), []id.EventID{m[4], m[5]})
		// State at the last event returned: the old name, both members.
		if name := ctxStateOf(cx.State, event.StateRoomName, ""); name == nil || name.Content.Raw["name"] != "before" {
			t.Fatalf("state name: %+v", name)
		}
		if ctxStateOf(cx.State, event.StateMember, bob.UserID.String()) == nil || ctxStateOf(cx.State, event.StateCreate, "") == nil {
			t.Fatalf("state lacks bob's membership or the create event: %d events", len(cx.State))
		}
		// The tokens continue with /messages on either side.
		back, err := alice.Messages(ctx, roomID, cx.Start, "", mautrix.DirectionBackward, nil, 1)
		if err != nil || len(back.Chunk) != 1 || back.Chunk[0].ID != m[0] {
			t.Fatalf("messages back from start: %v %+v", err, back)
		}
		fwd, err := alice.Messages(ctx, roomID, cx.End, "", mautrix.DirectionForward, nil, 1)
		if err != nil || len(fwd.Chunk) != 1 || fwd.Chunk[0].ID != m[6] {
			t.Fatalf("messages forward from end: %v %+v", err, fwd)
		}

		// limit=0: the event alone. (mautrix drops limit 0, so raw.)
		var zero mautrix.RespContext
		u := alice.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "rooms", roomID, "context", m[3]}, map[string]string{"limit": "0"})
		if _, err := alice.MakeRequest(ctx, http.MethodGet, u, nil, &zero); err != nil {
			t.Fatal(err)
		}
		if zero.Event == nil || zero.Event.ID != m[3] || len(zero.EventsBefore) != 0 || len(zero.EventsAfter) != 0 {
			t.Fatalf("limit 0: %+v", zero)
		}

		// The last event of the room: state is the current state.
		last, err := alice.Context(ctx, roomID, m[6], nil, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(last.EventsAfter) != 1 || last.EventsAfter[0].Type.Type != event.StateRoomName.Type {
			t.Fatalf("events after the last message: %+v", relIDs(last.EventsAfter))
		}
		if name := ctxStateOf(last.State, event.StateRoomName, ""); name == nil || name.Content.Raw["name"] != "after" {
			t.Fatalf("state name at the end: %+v", name)
		}

		// A filter applies to both sides and the state, not the event.
		onlyState := &mautrix.FilterPart{Types: []event.Type{event.StateRoomName, event.StateMember}}
		f, err := alice.Context(ctx, roomID, m[6], onlyState, 10)
		if err != nil {
			t.Fatal(err)
		}
		if f.Event.ID != m[6] || len(f.EventsAfter) != 1 || f.EventsAfter[0].Type.Type != event.StateRoomName.Type {
			t.Fatalf("filtered context: event %s, after %v", f.Event.ID, relIDs(f.EventsAfter))
		}
		for _, ev := range append(append([]*event.Event{}, f.EventsBefore...), f.State...) {
			if ev.Type.Type != event.StateRoomName.Type && ev.Type.Type != event.StateMember.Type {
				t.Fatalf("filtered context includes a %s", ev.Type.Type)
			}
		}
		// lazy_load_members: only the senders' memberships.
		lazy, err := alice.Context(ctx, roomID, m[3], &mautrix.FilterPart{LazyLoadMembers: true}, 4)
		if err != nil {
			t.Fatal(err)
		}
		if ctxStateOf(lazy.State, event.StateMember, alice.UserID.String()) == nil {
			t.Fatalf("lazy state lacks the sender's membership")
		}
		if ctxStateOf(lazy.State, event.StateMember, bob.UserID.String()) != nil {
			t.Fatalf("lazy state includes a member who sent nothing")
		}
		if ctxStateOf(lazy.State, event.StateRoomName, "") == nil {
			t.Fatalf("lazy state lacks the room name")
		}

		// carol joined later under "joined" visibility: the old event is
		// hidden (404), and so are the events around one she can see.
		carol := s.Register("carol", "pw")
		if _, err := carol.JoinRoomByID(ctx, roomID); err != nil {
			t.Fatal(err)
		}
		_, err = carol.Context(ctx, roomID, m[3], nil, 4)
		testserver.WantHTTPError(t, "context of a hidden event", err, http.StatusNotFound, "M_NOT_FOUND")
		_, err = carol.Context(ctx, roomID, "$missing", nil, 4)
		testserver.WantHTTPError(t, "context of a missing event", err, http.StatusNotFound, "M_NOT_FOUND")
		seen := relSend(t, alice, roomID, event.EventMessage, relText("carol sees this"))
		cc, err := carol.Context(ctx, roomID, seen, nil, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(cc.EventsBefore) == 0 || cc.EventsBefore[0].Type.Type != event.StateMember.Type || cc.EventsBefore[0].GetStateKey() != carol.UserID.String() {
			t.Fatalf("carol's events before: %v", relIDs(cc.EventsBefore))
		}
		// Before her join, nothing sent under "joined" visibility.
		for _, ev := range cc.EventsBefore[1:] {
			if name, _ := ev.Content.Raw["name"].(string); ev.Type.Type == event.EventMessage.Type || name == "before" || name == "after" {
				t.Fatalf("carol sees %s %s from before her join", ev.Type.Type, ev.ID)
			}
		}
		// Outsiders are refused.
		dave := s.Register("dave", "pw")
		_, err = dave.Context(ctx, roomID, seen, nil, 4)
		testserver.WantHTTPError(t, "context for a stranger", err, http.StatusForbidden, "M_FORBIDDEN")
	})
}

// TestTimestampToEvent checks /timestamp_to_event in both directions,
// the inclusive bound, 404 past either end, parameter errors, history
// visibility and access.
func TestTimestampToEvent(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw")
		roomID := relRoom(t, alice)
		hv, err := alice.SendStateEvent(ctx, roomID, event.StateHistoryVisibility, "", map[string]any{"history_visibility": "joined"})
		if err != nil {
			t.Fatal(err)
		}
		var ids []id.EventID
		var ts []int64
		for i := 0; i < 3; i++ {
			relTick()
			eid := relSend(t, alice, roomID, event.EventMessage, relText("tick"))
			ev, err := alice.GetEvent(ctx, roomID, eid)
			if err != nil {
				t.Fatal(err)
			}
			ids, ts = append(ids, eid), append(ts, ev.Timestamp)
		}
		relTick()

		find := func(cli *mautrix.Client, at int64, dir mautrix.Direction) (id.EventID, error) {
			resp, err := cli.TimestampToEvent(ctx, roomID, time.UnixMilli(at), dir)
			if err != nil {
				return "", err
			}
			return resp.EventID, nil
		}
		for _, c := range []struct {
			at   int64
			dir  mautrix.Direction
			want id.EventID
		}{
			{ts[1], mautrix.DirectionForward, ids[1]},
			{ts[1], mautrix.DirectionBackward, ids[1]},
			{ts[1] + 1, mautrix.DirectionForward, ids[2]},
			{ts[1] - 1, mautrix.DirectionBackward, ids[0]},
			{ts[2] + 10_000_000, mautrix.DirectionBackward, ids[2]},
		} {
			got, err := find(alice, c.at, c.dir)
			if err != nil || got != c.want {
				t.Fatalf("ts %d dir %c: got %s (%v), want %s", c.at, c.dir, got, err, c.want)
			}
		}
		resp, err := alice.TimestampToEvent(ctx, roomID, time.UnixMilli(ts[0]), mautrix.DirectionForward)
		if err != nil || resp.Timestamp.UnixMilli() != ts[0] {
			t.Fatalf("origin_server_ts: %+v %v", resp, err)
		}
		_, err = find(alice, ts[2]+10_000_000, mautrix.DirectionForward)
		testserver.WantHTTPError(t, "after the last event", err, http.StatusNotFound, "M_NOT_FOUND")
		_, err = find(alice, 1, mautrix.DirectionBackward)
		testserver.WantHTTPError(t, "before the first event", err, http.StatusNotFound, "M_NOT_FOUND")

		var raw map[string]any
		for _, q := range []map[string]string{{"ts": "1"}, {"dir": "f"}} {
			u := alice.BuildURLWithQuery(mautrix.ClientURLPath{"v1", "rooms", roomID, "timestamp_to_event"}, q)
			_, err = alice.MakeRequest(ctx, http.MethodGet, u, nil, &raw)
			testserver.WantHTTPError(t, "missing parameter", err, http.StatusBadRequest, "M_MISSING_PARAM")
		}
		for _, q := range []map[string]string{{"ts": "soon", "dir": "f"}, {"ts": "1", "dir": "up"}} {
			u := alice.BuildURLWithQuery(mautrix.ClientURLPath{"v1", "rooms", roomID, "timestamp_to_event"}, q)
			_, err = alice.MakeRequest(ctx, http.MethodGet, u, nil, &raw)
			testserver.WantHTTPError(t, "bad parameter", err, http.StatusBadRequest, "M_INVALID_PARAM")
		}

		// carol joined later under "joined" visibility: the first event
		// she may see is her own join.
		carol := s.Register("carol", "pw")
		if _, err := carol.JoinRoomByID(ctx, roomID); err != nil {
			t.Fatal(err)
		}
		got, err := find(carol, ts[0], mautrix.DirectionForward)
		if err != nil {
			t.Fatal(err)
		}
		joinEv, err := carol.GetEvent(ctx, roomID, got)
		if err != nil || joinEv.Type.Type != event.StateMember.Type || joinEv.GetStateKey() != carol.UserID.String() {
			t.Fatalf("carol's first visible event: %s %+v %v", got, joinEv, err)
		}
		// Backwards, the messages are hidden; the change to "joined" is
		// not, as the visibility before it ("shared") lets her see it.
		if got, err := find(carol, ts[2], mautrix.DirectionBackward); err != nil || got != hv.EventID {
			t.Fatalf("carol backwards: got %s (%v), want the history_visibility event %s", got, err, hv.EventID)
		}

		dave := s.Register("dave", "pw")
		_, err = find(dave, ts[0], mautrix.DirectionForward)
		testserver.WantHTTPError(t, "stranger", err, http.StatusForbidden, "M_FORBIDDEN")
	})
}

type ctxInitialSync struct {
	RoomID     id.RoomID `json:"room_id"`
	Membership string    `json:"membership"`
	Messages   struct {
		Chunk []*event.Event `json:"chunk"`
		Start string         `json:"start"`
		End   string         `json:"end"`
	} `json:"messages"`
	State      []*event.Event `json:"state"`
	Visibility string         `json:"visibility"`
	Presence   []any          `json:"presence"`
	Receipts   []any          `json:"receipts"`
}

func ctxRoomInitialSync(cli *mautrix.Client, roomID id.RoomID) (*ctxInitialSync, error) {
	var resp ctxInitialSync
	_, err := cli.MakeRequest(context.Background(), http.MethodGet, cli.BuildClientURL("v3", "rooms", roomID, "initialSync"), nil, &resp)
	return &resp, err
}

// TestRoomInitialSync checks the room /initialSync for a member, a user
// who left (history and state up to the leave), a peeker in a
// world-readable room and a stranger.
func TestRoomInitialSync(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw")
		bob := s.Register("bob", "pw")
		roomID := relRoom(t, alice, bob)
		var m []id.EventID
		for i := 0; i < 12; i++ {
			m = append(m, relSend(t, alice, roomID, event.EventMessage, relText("hello")))
		}

		is, err := ctxRoomInitialSync(bob, roomID)
		if err != nil {
			t.Fatalf("initialSync: %v", err)
		}
		if is.RoomID != roomID || is.Membership != "join" || is.Visibility != "private" || is.Presence == nil || is.Receipts == nil {
			t.Fatalf("initialSync: %+v", is)
		}
		relSameIDs(t, "initialSync messages", relIDs(is.Messages.Chunk), m[2:])
		if ctxStateOf(is.State, event.StateRoomName, "") == nil || ctxStateOf(is.State, event.StateMember, bob.UserID.String()) == nil {
			t.Fatalf("initialSync state lacks the name or bob: %d events", len(is.State))
		}
		older, err := bob.Messages(ctx, roomID, is.Messages.Start, "", mautrix.DirectionBackward, nil, 2)
		if err != nil || len(older.Chunk) != 2 || older.Chunk[0].ID != m[1] || older.Chunk[1].ID != m[0] {
			t.Fatalf("messages before initialSync's start: %v %+v", err, older)
		}
		newer, err := bob.Messages(ctx, roomID, is.Messages.End, "", mautrix.DirectionForward, nil, 2)
		if err != nil || len(newer.Chunk) != 0 {
			t.Fatalf("messages after initialSync's end: %v %+v", err, newer)
		}

		// bob leaves: he gets the room as it was when he left.
		if _, err := bob.LeaveRoom(ctx, roomID); err != nil {
			t.Fatal(err)
		}
		after := relSend(t, alice, roomID, event.EventMessage, relText("bob is gone"))
		if _, err := alice.SendStateEvent(ctx, roomID, event.StateRoomName, "", map[string]any{"name": "renamed"}); err != nil {
			t.Fatal(err)
		}
		is, err = ctxRoomInitialSync(bob, roomID)
		if err != nil {
			t.Fatalf("initialSync after leaving: %v", err)
		}
		if is.Membership != "leave" {
			t.Fatalf("membership after leaving: %q", is.Membership)
		}
		if last := is.Messages.Chunk[len(is.Messages.Chunk)-1]; last.Type.Type != event.StateMember.Type || last.GetStateKey() != bob.UserID.String() {
			t.Fatalf("last message for bob is not his leave: %+v", last)
		}
		if relFind(is.Messages.Chunk, after) != nil {
			t.Fatalf("bob sees a message sent after he left")
		}
		if name := ctxStateOf(is.State, event.StateRoomName, ""); name == nil || name.Content.Raw["name"] != "Relations" {
			t.Fatalf("bob's state name: %+v", name)
		}

		// Strangers are refused, unless the room is world-readable.
		dave := s.Register("dave", "pw")
		_, err = ctxRoomInitialSync(dave, roomID)
		testserver.WantHTTPError(t, "stranger", err, http.StatusForbidden, "M_FORBIDDEN")
		if _, err := alice.SendStateEvent(ctx, roomID, event.StateHistoryVisibility, "", map[string]any{"history_visibility": "world_readable"}); err != nil {
			t.Fatal(err)
		}
		is, err = ctxRoomInitialSync(dave, roomID)
		if err != nil {
			t.Fatalf("peek: %v", err)
		}
		if is.Membership != "join" || len(is.Messages.Chunk) == 0 || is.Messages.Chunk[len(is.Messages.Chunk)-1].Type.Type != event.StateHistoryVisibility.Type {
			t.Fatalf("peek: membership %q, %d messages", is.Membership, len(is.Messages.Chunk))
		}
		if name := ctxStateOf(is.State, event.StateRoomName, ""); name == nil || name.Content.Raw["name"] != "renamed" {
			t.Fatalf("peek state name: %+v", name)
		}
	})
}
