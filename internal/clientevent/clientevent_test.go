package clientevent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/myelin-chat/myelin/internal/rooms"
)

const roomID = "!room:hs1.test"

// event builds a room version 10 event from its fields (redacts sits at
// the top level there, as the spec's v1-v10 formats have it).
func event(t *testing.T, fields map[string]any) *rooms.Event {
	t.Helper()
	ev := map[string]any{
		"room_id": roomID, "sender": "@alice:hs1.test", "type": "m.room.message", "content": map[string]any{"body": "hi"},
		"origin_server_ts": 1_000_000, "depth": 1, "prev_events": []string{}, "auth_events": []string{},
		"hashes": map[string]any{"sha256": "AAAA"}, "signatures": map[string]any{},
	}
	for k, v := range fields {
		if v == nil {
			delete(ev, k)
			continue
		}
		ev[k] = v
	}
	raw, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	pdu, err := gomatrixserverlib.MustGetRoomVersion(gomatrixserverlib.RoomVersionV10).NewEventFromTrustedJSON(raw, false)
	if err != nil {
		t.Fatal(err)
	}
	return &rooms.Event{PDU: pdu}
}

// wire is the event as a client receives it.
func wire(t *testing.T, e Event) map[string]any {
	t.Helper()
	raw, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestFormatFields(t *testing.T) {
	now := time.UnixMilli(1_000_000 + 2500)
	msg := event(t, nil)
	got := wire(t, Format(msg, Options{Now: now}))
	if got["event_id"] != msg.EventID() || got["room_id"] != roomID || got["sender"] != "@alice:hs1.test" || got["type"] != "m.room.message" ||
		got["origin_server_ts"] != float64(1_000_000) {
		t.Fatalf("fields: %v", got)
	}
	if _, ok := got["state_key"]; ok {
		t.Fatal("a message event has a state_key")
	}
	if _, ok := got["redacts"]; ok {
		t.Fatal("a message event has redacts")
	}
	if u := got["unsigned"].(map[string]any); u["age"] != float64(2500) || len(u) != 1 {
		t.Fatalf("unsigned: %v", u)
	}
	if got := wire(t, Format(msg, Options{Now: now, OmitRoomID: true})); got["room_id"] != nil {
		t.Fatalf("OmitRoomID kept room_id: %v", got["room_id"])
	}
	// An event from the future (clock skew) has age 0, never negative.
	if u := wire(t, Format(msg, Options{Now: time.UnixMilli(999_000)}))["unsigned"].(map[string]any); u["age"] != float64(0) {
		t.Fatalf("age of a future event: %v", u["age"])
	}

	// A state event with the empty state key keeps "state_key": "".
	empty := event(t, map[string]any{"type": "m.room.topic", "state_key": "", "content": map[string]any{"topic": "t"}})
	if sk, ok := wire(t, Format(empty, Options{Now: now}))["state_key"]; !ok || sk != "" {
		t.Fatalf("empty state key: %v %v", sk, ok)
	}
	red := event(t, map[string]any{"type": "m.room.redaction", "redacts": "$target", "content": map[string]any{}})
	if got := wire(t, Format(red, Options{Now: now})); got["redacts"] != "$target" {
		t.Fatalf("redaction: redacts %v", got["redacts"])
	}
}

// TestTransactionID: unsigned.transaction_id goes only to the device
// that sent the event (spec: "only present if the event was sent by the
// device viewing it").
func TestTransactionID(t *testing.T) {
	ev := event(t, nil)
	ev.TxnLocalpart, ev.TxnDevice, ev.TxnID = "alice", "DEV1", "txn1"
	for _, tc := range []struct {
		viewer Viewer
		want   bool
	}{
		{Viewer{Localpart: "alice", DeviceID: "DEV1"}, true},
		{Viewer{Localpart: "alice", DeviceID: "DEV2"}, false},
		{Viewer{Localpart: "bob", DeviceID: "DEV1"}, false},
		{Viewer{}, false},
	} {
		u := wire(t, Format(ev, Options{Viewer: tc.viewer}))["unsigned"].(map[string]any)
		if _, got := u["transaction_id"]; got != tc.want {
			t.Errorf("viewer %+v: transaction_id present %v, want %v", tc.viewer, got, tc.want)
		}
	}
	// An event without a recorded device never matches an empty viewer.
	anon := event(t, nil)
	anon.TxnID = "txn2"
	if u := wire(t, Format(anon, Options{}))["unsigned"].(map[string]any); u["transaction_id"] != nil {
		t.Fatalf("transaction_id for an empty viewer: %v", u)
	}
}

func TestFormatOptions(t *testing.T) {
	ev := event(t, map[string]any{"type": "m.room.topic", "state_key": "", "content": map[string]any{"topic": "new"}})
	because := Event{EventID: "$red", Type: "m.room.redaction"}
	u := wire(t, Format(ev, Options{PrevContent: json.RawMessage(`{"topic":"old"}`), PrevSender: "@bob:hs1.test",
		ReplacesState: "$old", RedactedBecause: &because, Relations: map[string]any{"m.thread": map[string]any{"count": 1}}}))["unsigned"].(map[string]any)
	if pc, _ := u["prev_content"].(map[string]any); pc["topic"] != "old" {
		t.Errorf("prev_content: %v", u["prev_content"])
	}
	if u["prev_sender"] != "@bob:hs1.test" || u["replaces_state"] != "$old" {
		t.Errorf("prev_sender/replaces_state: %v", u)
	}
	if rb, _ := u["redacted_because"].(map[string]any); rb["event_id"] != "$red" {
		t.Errorf("redacted_because: %v", u["redacted_because"])
	}
	if rel, _ := u["m.relations"].(map[string]any); rel["m.thread"] == nil {
		t.Errorf("m.relations: %v", u["m.relations"])
	}
	// Empty relations are left out, not sent as {}.
	u = wire(t, Format(ev, Options{Relations: map[string]any{}}))["unsigned"].(map[string]any)
	for _, k := range []string{"m.relations", "prev_content", "prev_sender", "replaces_state", "redacted_because"} {
		if _, ok := u[k]; ok {
			t.Errorf("%s present without a value", k)
		}
	}
}

func TestStrip(t *testing.T) {
	ev := event(t, map[string]any{"type": "m.room.name", "state_key": "", "content": map[string]any{"name": "Room"}})
	raw, _ := json.Marshal(Strip(ev))
	var s map[string]any
	_ = json.Unmarshal(raw, &s)
	if len(s) != 4 || s["type"] != "m.room.name" || s["state_key"] != "" || s["sender"] != "@alice:hs1.test" || s["content"].(map[string]any)["name"] != "Room" {
		t.Fatalf("stripped: %s", raw)
	}
}

// loader serves events from maps and counts its calls.
type loader struct {
	byNID map[int64]*rooms.Event
	byID  map[string]*rooms.Event
	calls int
	err   error
}

func (l *loader) EventsByNID(_ context.Context, nids []int64) ([]*rooms.Event, error) {
	l.calls++
	var out []*rooms.Event
	for _, n := range nids {
		if ev := l.byNID[n]; ev != nil {
			out = append(out, ev)
		}
	}
	return out, l.err
}

func (l *loader) EventsByID(_ context.Context, ids []string) ([]*rooms.Event, error) {
	l.calls++
	var out []*rooms.Event
	for _, id := range ids {
		if ev := l.byID[id]; ev != nil {
			out = append(out, ev)
		}
	}
	return out, l.err
}

func (l *loader) MembershipAfter(context.Context, *rooms.Event, string) (string, error) {
	return "join", nil
}

// TestRender: prev_content, prev_sender and replaces_state come from the
// replaced state event, redacted_because from the redaction, relations
// from the hook; events needing none of them cost no load; the order of
// the batch is kept.
func TestRender(t *testing.T) {
	ctx := context.Background()
	old := event(t, map[string]any{"type": "m.room.topic", "state_key": "", "sender": "@bob:hs1.test", "content": map[string]any{"topic": "old"}})
	old.NID = 7
	cur := event(t, map[string]any{"type": "m.room.topic", "state_key": "", "content": map[string]any{"topic": "new"}, "origin_server_ts": 1_000_001})
	cur.ReplacesNID = 7
	redaction := event(t, map[string]any{"type": "m.room.redaction", "redacts": "$x", "content": map[string]any{}, "origin_server_ts": 1_000_002})
	redacted := event(t, map[string]any{"content": map[string]any{}, "origin_server_ts": 1_000_003})
	redacted.RedactedBy = redaction.EventID()
	plain := event(t, map[string]any{"origin_server_ts": 1_000_004})

	l := &loader{byNID: map[int64]*rooms.Event{7: old}, byID: map[string]*rooms.Event{redaction.EventID(): redaction}}
	var hookSaw []string
	r := Renderer{Loader: l, Relations: func(_ context.Context, viewer string, evs []*rooms.Event) (map[string]map[string]any, error) {
		for _, ev := range evs {
			hookSaw = append(hookSaw, ev.EventID())
		}
		return map[string]map[string]any{plain.EventID(): {"m.reference": map[string]any{"chunk": []any{}}}}, nil
	}}
	out, err := r.Render(ctx, []*rooms.Event{plain, cur, redacted}, Viewer{}, "@alice:hs1.test", true)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 3 || out[0].EventID != plain.EventID() || out[1].EventID != cur.EventID() || out[2].EventID != redacted.EventID() {
		t.Fatalf("order not kept: %v", out)
	}
	if len(hookSaw) != 3 {
		t.Fatalf("the relations hook saw %v", hookSaw)
	}
	if out[0].Unsigned.Relations == nil || out[1].Unsigned.Relations != nil {
		t.Fatalf("relations on the wrong events: %v / %v", out[0].Unsigned, out[1].Unsigned)
	}
	u := out[1].Unsigned
	if string(u.PrevContent) != `{"topic":"old"}` || u.PrevSender != "@bob:hs1.test" || u.ReplacesState != old.EventID() {
		t.Fatalf("replaced state: %v", u)
	}
	rb := out[2].Unsigned.RedactedBecause
	if rb == nil || rb.EventID != redaction.EventID() || rb.Redacts != "$x" {
		t.Fatalf("redacted_because: %v", rb)
	}
	if out[1].RoomID != "" {
		t.Fatal("omitRoomID not applied")
	}
	// redacted_because keeps its room_id: it is a whole event of its own.
	if rb.RoomID != roomID {
		t.Fatalf("redacted_because room_id %q", rb.RoomID)
	}

	// Events needing nothing load nothing.
	l2 := &loader{}
	if _, err := (Renderer{Loader: l2}).Render(ctx, []*rooms.Event{plain}, Viewer{}, "", false); err != nil || l2.calls != 0 {
		t.Fatalf("plain events: %d loads, err %v", l2.calls, err)
	}
	// A replaced event that cannot be loaded renders without prev_content.
	gone := event(t, map[string]any{"type": "m.room.topic", "state_key": "", "origin_server_ts": 1_000_005})
	gone.ReplacesNID = 99
	out, err = Renderer{Loader: l}.Render(ctx, []*rooms.Event{gone}, Viewer{}, "", false)
	if err != nil || out[0].Unsigned.PrevContent != nil {
		t.Fatalf("missing replaced event: %v %v", out, err)
	}
	// Load and hook errors are returned, not rendered around.
	failing := &loader{err: errors.New("db down")}
	if _, err := (Renderer{Loader: failing}).Render(ctx, []*rooms.Event{cur}, Viewer{}, "", false); err == nil {
		t.Fatal("a load error was swallowed")
	}
	hookErr := Renderer{Loader: &loader{}, Relations: func(context.Context, string, []*rooms.Event) (map[string]map[string]any, error) {
		return nil, fmt.Errorf("relations failed")
	}}
	if _, err := hookErr.Render(ctx, []*rooms.Event{plain}, Viewer{}, "", false); err == nil {
		t.Fatal("a relations error was swallowed")
	}
}

// Rendering a timeline event for a viewer allocates no unsigned
// object: a map before, it cost allocations per rendered event (the map
// and its boxed values), and every woken /sync renders its timeline
// (issue 20).
func TestFormatAllocations(t *testing.T) {
	ev := event(t, nil)
	now := time.UnixMilli(1_000_000 + 2500)
	o := Options{Now: now, Membership: "join", OmitRoomID: true}
	var out Event
	if n := testing.AllocsPerRun(100, func() { out = Format(ev, o) }); n > 2 {
		t.Fatalf("Format allocates %v times", n)
	}
	u := wire(t, out)["unsigned"].(map[string]any)
	if u["age"] != float64(2500) || u["membership"] != "join" || len(u) != 2 {
		t.Fatalf("unsigned: %v", u)
	}
	out.Unsigned.FilteredBy = []string{"feed"}
	if f, _ := wire(t, out)["unsigned"].(map[string]any)[FilteredByKey].([]any); len(f) != 1 || f[0] != "feed" {
		t.Fatalf("%s: %v", FilteredByKey, wire(t, out)["unsigned"])
	}
}
