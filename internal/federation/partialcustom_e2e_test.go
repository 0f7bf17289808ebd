package federation_test

import (
	"context"
	"testing"

	"github.com/matrix-org/gomatrixserverlib/spec"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestPartialStateJoinDefersCustomState: a partial-state join stores the
// room's m. state at once and leaves its custom state (outside the m.
// namespace) to the resync, as it leaves the members (issue 14 item 12):
// while the resync is held hs2 knows the room's name and topic but not
// its widget; once the full state is in, it knows the widget too, and
// bob reads it.
func TestPartialStateJoinDefersCustomState(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, partialJoins, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2 := net.Servers[0], net.Servers[1]
		alice := hs1.Register("alice", "password1234")
		bob := hs2.Register("bob", "password1234")
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Custom", Topic: "a topic"})
		if err != nil {
			t.Fatal(err)
		}
		roomID := created.RoomID
		widget := event.Type{Type: "org.example.widget", Class: event.StateEventType}
		if _, err := alice.SendStateEvent(ctx, roomID, widget, "w", map[string]any{"url": "https://example.org"}); err != nil {
			t.Fatal(err)
		}

		release := hs2.PartialStateResync().Hold()
		defer release()
		if _, err := bob.JoinRoom(ctx, roomID.String(), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
			t.Fatalf("bob joins with partial state: %v", err)
		}
		has := func(typ, key string) bool {
			t.Helper()
			state, err := hs2.Engine().CurrentState(ctx, roomID.String())
			if err != nil {
				t.Fatal(err)
			}
			return state[roommodel.StateKey{Type: typ, StateKey: key}] != 0
		}
		if !has(spec.MRoomName, "") || !has(spec.MRoomTopic, "") || !has(spec.MRoomCreate, "") {
			t.Fatal("hs2's partial state lacks the room's m. state")
		}
		if has(widget.Type, "w") {
			t.Fatal("hs2's partial state holds the custom state before the resync")
		}
		release()
		sendPoll(t, "hs2's room completed", func() string {
			partial, _, err := hs2.Engine().PartialState(ctx, roomID.String())
			if err != nil || partial {
				return "still partial"
			}
			return ""
		})
		if !has(widget.Type, "w") {
			t.Fatal("hs2's full state lacks the custom state")
		}
		var content map[string]any
		if err := bob.StateEvent(ctx, roomID, widget, "w", &content); err != nil || content["url"] != "https://example.org" {
			t.Fatalf("bob reads the widget: %v, %v", content, err)
		}
	})
}
