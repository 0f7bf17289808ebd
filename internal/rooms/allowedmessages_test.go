package rooms

import (
	"context"
	"testing"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/testdb"
)

// TestAllowedMessagesFollowAuthEvents: messages the auth rules allowed
// are remembered per room, and a change of the power levels, of the
// sender's membership, takes effect on the very next message.
func TestAllowedMessagesFollowAuthEvents(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		e, _, _ := newTestEngine(t, dbURL)
		roomID, err := e.CreateRoom(ctx, CreateRequest{Creator: "@alice:a.test", Preset: PresetPublicChat})
		if err != nil {
			t.Fatal(err)
		}
		send := func(sender, typ string, key *string, content map[string]any) error {
			_, err := e.Send(ctx, SendRequest{RoomID: roomID, Sender: sender, Type: typ, StateKey: key, Content: content})
			return err
		}
		if err := send("@bob:a.test", spec.MRoomMember, strp("@bob:a.test"), map[string]any{"membership": "join"}); err != nil {
			t.Fatal(err)
		}
		msg := map[string]any{"msgtype": "m.text", "body": "hi"}
		for i := 0; i < 3; i++ {
			if err := send("@bob:a.test", "m.room.message", nil, msg); err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
		}
		h, err := e.lockRoom(ctx, roomID)
		if err != nil {
			t.Fatal(err)
		}
		remembered := len(h.allowed)
		e.unlockRoom(h)
		if remembered != 1 {
			t.Fatalf("%d allowed keys remembered after three messages of one sender, want 1", remembered)
		}

		pl := map[string]any{"users": map[string]any{"@alice:a.test": 100}, "events": map[string]any{"m.room.message": 50}}
		if err := send("@alice:a.test", spec.MRoomPowerLevels, strp(""), pl); err != nil {
			t.Fatal(err)
		}
		if err := send("@bob:a.test", "m.room.message", nil, msg); err == nil {
			t.Fatal("a message below the new power level was allowed")
		}
		// Another type is still at events_default.
		if err := send("@bob:a.test", "m.reaction", nil, map[string]any{}); err != nil {
			t.Fatal(err)
		}
		pl["events"] = map[string]any{}
		if err := send("@alice:a.test", spec.MRoomPowerLevels, strp(""), pl); err != nil {
			t.Fatal(err)
		}
		if err := send("@bob:a.test", "m.room.message", nil, msg); err != nil {
			t.Fatalf("the level lowered again: %v", err)
		}
		if err := send("@bob:a.test", spec.MRoomMember, strp("@bob:a.test"), map[string]any{"membership": "leave"}); err != nil {
			t.Fatal(err)
		}
		if err := send("@bob:a.test", "m.room.message", nil, msg); err == nil {
			t.Fatal("a message of a member who left was allowed")
		}
	})
}
