package rooms

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/myelin-chat/myelin/internal/testdb"
)

// TestSetStateDeduplicates: the same content by the same sender returns
// the existing event (whatever the key order); other content or another
// sender makes a new event.
func TestSetStateDeduplicates(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		e, _, _ := newTestEngine(t, dbURL)
		const alice, bob = "@alice:hs1.test", "@bob:hs1.test"
		roomID, err := e.CreateRoom(ctx, CreateRequest{Creator: alice, Preset: "public_chat",
			PowerLevelOverride: map[string]json.RawMessage{"events_default": json.RawMessage(`0`), "state_default": json.RawMessage(`0`)}})
		if err != nil {
			t.Fatal(err)
		}
		key := bob
		if _, err := e.Send(ctx, SendRequest{RoomID: roomID, Sender: bob, Type: "m.room.member", StateKey: &key,
			Content: json.RawMessage(`{"membership":"join"}`)}); err != nil {
			t.Fatal(err)
		}
		first, err := e.SetState(ctx, roomID, alice, "m.test", "", json.RawMessage(`{"a":1,"b":[1,2]}`))
		if err != nil {
			t.Fatal(err)
		}
		same, err := e.SetState(ctx, roomID, alice, "m.test", "", json.RawMessage(`{ "b":[1,2], "a":1 }`))
		if err != nil || same.EventID() != first.EventID() {
			t.Fatalf("same content: %v %v, want %s", same, err, first.EventID())
		}
		changed, err := e.SetState(ctx, roomID, alice, "m.test", "", json.RawMessage(`{"a":2,"b":[1,2]}`))
		if err != nil || changed.EventID() == first.EventID() {
			t.Fatalf("changed content: %v", err)
		}
		byBob, err := e.SetState(ctx, roomID, bob, "m.test", "", json.RawMessage(`{"a":2,"b":[1,2]}`))
		if err != nil || byBob.EventID() == changed.EventID() {
			t.Fatalf("another sender: %v", err)
		}
		otherKey, err := e.SetState(ctx, roomID, bob, "m.test", "k", json.RawMessage(`{"a":2,"b":[1,2]}`))
		if err != nil || otherKey.EventID() == byBob.EventID() {
			t.Fatalf("another state key: %v", err)
		}
	})
}
