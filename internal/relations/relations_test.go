package relations

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/clientevent"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/roomtest"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// pduEvent builds a room version 10 event with the given content and
// state key (nil: not state), unsigned, for the pure functions. Each has
// its own timestamp: the event ID hashes the redacted event, which drops
// a message's content.
func pduEvent(t *testing.T, content string, stateKey *string) *rooms.Event {
	t.Helper()
	pduSeq++
	ev := map[string]any{
		"room_id": "!r:hs1.test", "sender": "@alice:hs1.test", "type": "m.room.message", "content": json.RawMessage(content),
		"origin_server_ts": pduSeq, "depth": 1, "prev_events": []string{}, "auth_events": []string{},
		"hashes": map[string]any{"sha256": "AAAA"}, "signatures": map[string]any{},
	}
	if stateKey != nil {
		ev["state_key"] = *stateKey
	}
	raw, _ := json.Marshal(ev)
	pdu, err := gomatrixserverlib.MustGetRoomVersion(gomatrixserverlib.RoomVersionV10).NewEventFromTrustedJSON(raw, false)
	if err != nil {
		t.Fatal(err)
	}
	return &rooms.Event{PDU: pdu}
}

var pduSeq int

func TestOf(t *testing.T) {
	for _, tc := range []struct {
		content, rel, parent string
	}{
		{`{"body":"x"}`, "", ""},
		{`{"m.relates_to":{"rel_type":"m.thread","event_id":"$root"}}`, Thread, "$root"},
		{`{"m.relates_to":{"rel_type":"m.replace","event_id":"$orig"}}`, Replace, "$orig"},
		{`{"m.relates_to":{"rel_type":"m.annotation","event_id":"$m","key":"👍"}}`, Annotation, "$m"},
		// A rel_type without an event_id is no relation.
		{`{"m.relates_to":{"rel_type":"m.thread"}}`, "", ""},
		// A reply alone (m.in_reply_to) has no rel_type: it is not a relation.
		{`{"m.relates_to":{"m.in_reply_to":{"event_id":"$q"}}}`, "", ""},
		// An event_id without a rel_type is kept with an empty type.
		{`{"m.relates_to":{"event_id":"$x"}}`, "", "$x"},
		{`{"m.relates_to":"nonsense"}`, "", ""},
		{`{"m.relates_to":{"rel_type":5,"event_id":"$x"}}`, "", ""},
	} {
		rel, parent := Of(pduEvent(t, tc.content, nil))
		if rel != tc.rel || parent != tc.parent {
			t.Errorf("Of(%s) = %q, %q; want %q, %q", tc.content, rel, parent, tc.rel, tc.parent)
		}
	}
}

func TestHasNewContent(t *testing.T) {
	for _, tc := range []struct {
		content string
		want    bool
	}{
		{`{"m.new_content":{"body":"fixed"}}`, true},
		{`{"m.new_content":{}}`, true},
		{`{"body":"no new content"}`, false},
		{`{"m.new_content":null}`, false},
		{`{"m.new_content":"text"}`, false},
		{`{"m.new_content":[1]}`, false},
	} {
		if got := hasNewContent(pduEvent(t, tc.content, nil)); got != tc.want {
			t.Errorf("hasNewContent(%s) = %v, want %v", tc.content, got, tc.want)
		}
	}
}

// TestParentsOf: state events, edits and annotations carry no
// aggregations; a repeated event counts once; only events that are no
// relation themselves may root a thread, and none when threads is off.
func TestParentsOf(t *testing.T) {
	empty := ""
	plain := pduEvent(t, `{"body":"a"}`, nil)
	state := pduEvent(t, `{"name":"n"}`, &empty)
	edit := pduEvent(t, `{"m.relates_to":{"rel_type":"m.replace","event_id":"$o"},"m.new_content":{}}`, nil)
	react := pduEvent(t, `{"m.relates_to":{"rel_type":"m.annotation","event_id":"$o","key":"x"}}`, nil)
	inThread := pduEvent(t, `{"m.relates_to":{"rel_type":"m.thread","event_id":"$root"}}`, nil)
	ps := parentsOf([]*rooms.Event{plain, state, edit, react, inThread, plain}, true)
	if len(ps.ids) != 2 || ps.ids[0] != plain.EventID() || ps.ids[1] != inThread.EventID() {
		t.Fatalf("ids %v", ps.ids)
	}
	if len(ps.roots) != 1 || ps.roots[0] != plain.EventID() {
		t.Fatalf("roots %v", ps.roots)
	}
	if ps := parentsOf([]*rooms.Event{plain}, false); len(ps.roots) != 0 || len(ps.ids) != 1 {
		t.Fatalf("threads off: %+v", ps)
	}
}

const (
	alice = "@alice:hs1.test"
	bob   = "@bob:hs1.test"
	carol = "@carol:hs1.test"
)

type fixture struct {
	engine *rooms.Engine
	agg    *Aggregator
	roomID string
}

func newFixture(t *testing.T, dbURL string) *fixture {
	t.Helper()
	ctx := context.Background()
	env := roomtest.New(t, dbURL, "12")
	db, engine := env.DB, env.Engine
	roomID, err := engine.CreateRoom(ctx, rooms.CreateRequest{Creator: alice, Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{bob, carol} {
		if _, err := engine.SetMembership(ctx, rooms.MembershipRequest{Sender: u, RoomID: roomID, Target: u, Membership: spec.Join}); err != nil {
			t.Fatal(err)
		}
	}
	return &fixture{engine: engine, agg: New(db, engine), roomID: roomID}
}

func (f *fixture) send(t *testing.T, sender string, content map[string]any) *rooms.Event {
	t.Helper()
	ev, err := f.engine.Send(context.Background(), rooms.SendRequest{RoomID: f.roomID, Sender: sender, Type: "m.room.message", Content: content})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func rel(relType, parent string) map[string]any {
	return map[string]any{"rel_type": relType, "event_id": parent}
}

// TestBundle: the aggregations of spec "Server-side aggregation": the
// latest valid edit (same sender, with m.new_content), references, and
// the thread summary with its count, latest event and whether the
// viewer took part; nothing for an event without relations, nor for a
// viewer who may not see the room's events.
func TestBundle(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL)
		ctx := context.Background()
		lonely := f.send(t, alice, map[string]any{"body": "no relations"})
		if b, err := f.agg.Bundle(ctx, bob, []*rooms.Event{lonely}); err != nil || len(b) != 0 {
			t.Fatalf("room without relations: %v %v", b, err)
		}

		root := f.send(t, alice, map[string]any{"body": "root"})
		edit1 := f.send(t, alice, map[string]any{"body": "* first fix", "m.new_content": map[string]any{"body": "first fix"}, "m.relates_to": rel(Replace, root.EventID())})
		edit2 := f.send(t, alice, map[string]any{"body": "* second fix", "m.new_content": map[string]any{"body": "second fix"}, "m.relates_to": rel(Replace, root.EventID())})
		// The most recent by origin_server_ts, ties going to the
		// lexicographically largest event ID (spec "Event replacements");
		// both are often sent within the same millisecond here.
		latestEdit := edit2
		if edit1.OriginServerTS() == edit2.OriginServerTS() && edit1.EventID() > edit2.EventID() {
			latestEdit = edit1
		}
		// Invalid edits: another sender's, and one without m.new_content.
		f.send(t, bob, map[string]any{"body": "* hijack", "m.new_content": map[string]any{"body": "hijack"}, "m.relates_to": rel(Replace, root.EventID())})
		f.send(t, alice, map[string]any{"body": "* empty", "m.relates_to": rel(Replace, root.EventID())})
		ref := f.send(t, bob, map[string]any{"body": "see above", "m.relates_to": rel(Reference, root.EventID())})
		f.send(t, bob, map[string]any{"body": "reply 1", "m.relates_to": rel(Thread, root.EventID())})
		lastReply := f.send(t, bob, map[string]any{"body": "reply 2", "m.relates_to": rel(Thread, root.EventID())})

		for _, tc := range []struct {
			viewer       string
			participated bool
		}{{alice, true}, {bob, true}, {carol, false}} {
			b, err := f.agg.Bundle(ctx, tc.viewer, []*rooms.Event{root, lonely})
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != 1 || b[root.EventID()] == nil {
				t.Fatalf("%s: bundles for %v", tc.viewer, keys(b))
			}
			agg := b[root.EventID()]
			if edit, _ := agg[Replace].(clientevent.Event); edit.EventID != latestEdit.EventID() {
				t.Errorf("%s: m.replace is %v, want the latest valid edit %s", tc.viewer, agg[Replace], latestEdit.EventID())
			}
			refs, _ := agg[Reference].(map[string]any)
			if chunk, _ := refs["chunk"].([]map[string]string); len(chunk) != 1 || chunk[0]["event_id"] != ref.EventID() {
				t.Errorf("%s: m.reference %v", tc.viewer, agg[Reference])
			}
			th, _ := agg[Thread].(map[string]any)
			latest, _ := th["latest_event"].(clientevent.Event)
			if th["count"] != int64(2) || latest.EventID != lastReply.EventID() {
				t.Errorf("%s: m.thread count %v latest %s, want 2 and %s", tc.viewer, th["count"], latest.EventID, lastReply.EventID())
			}
			// alice wrote the root, bob the replies: both took part.
			if th["current_user_participated"] != tc.participated {
				t.Errorf("%s: current_user_participated %v", tc.viewer, th["current_user_participated"])
			}
		}

		// dave, not in the room, may not see its children (history is
		// "shared"): no aggregation shows them to him.
		b, err := f.agg.Bundle(ctx, "@dave:hs1.test", []*rooms.Event{root})
		if err != nil || len(b) != 0 {
			t.Fatalf("aggregations for a viewer outside the room: %v %v", b, err)
		}
		// An edit carries no aggregations of its own.
		b, err = f.agg.Bundle(ctx, alice, []*rooms.Event{latestEdit})
		if err != nil || len(b) != 0 {
			t.Fatalf("an edit got aggregations: %v %v", b, err)
		}
	})
}

func keys(m map[string]map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
