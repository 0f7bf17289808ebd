package rooms

import (
	"context"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
	// Databases copied from one migrated once, not migrated per test.
	_ "github.com/myelin-chat/myelin/internal/testdb/migrated"
)

// TestTrimExtremitiesAndPurge: two concurrent events leave a room with
// two forward extremities; trimming keeps the newer one, which the next
// local event builds on alone. A purge then forgets the room: its events
// and head are gone from the engine as from the store.
func TestTrimExtremitiesAndPurge(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		e, st, _ := newTestEngine(t, dbURL)
		roomID, err := e.CreateRoom(ctx, CreateRequest{Creator: "@alice:a.test", Preset: PresetPublicChat, Version: "10"})
		if err != nil {
			t.Fatal(err)
		}
		v, _ := e.RoomVersion(ctx, roomID)
		b := newRemote("b.test")
		state, _ := e.CurrentState(ctx, roomID)
		createKey, plKey, jrKey := roommodel.StateKey{Type: spec.MRoomCreate}, roommodel.StateKey{Type: spec.MRoomPowerLevels}, roommodel.StateKey{Type: spec.MRoomJoinRules}
		base := e.stateIDs(t, state, createKey, plKey, jrKey)
		exts, depth, _ := e.Extremities(ctx, roomID)
		join := b.build(t, v, roomID, "@bob:b.test", spec.MRoomMember, strp("@bob:b.test"), map[string]string{"membership": "join"},
			exts, base, depth+1, time.Now())
		if ev, err := e.Receive(ctx, join); err != nil || ev.Status != roommodel.Accepted {
			t.Fatalf("bob's join: %+v %v", ev, err)
		}
		state, _ = e.CurrentState(ctx, roomID)
		auth := e.stateIDs(t, state, createKey, plKey, roommodel.StateKey{Type: spec.MRoomMember, StateKey: "@bob:b.test"})
		var branches []string
		for i, body := range []string{"one", "two"} {
			msg := b.build(t, v, roomID, "@bob:b.test", "m.room.message", nil, map[string]string{"body": body},
				[]string{join.EventID()}, auth, join.Depth()+1, time.Now().Add(time.Duration(i)*time.Second))
			if ev, err := e.Receive(ctx, msg); err != nil || ev.Status != roommodel.Accepted {
				t.Fatalf("message %s: %+v %v", body, ev, err)
			}
			branches = append(branches, msg.EventID())
		}
		details, err := e.ExtremityDetails(ctx, roomID)
		if err != nil || len(details) != 2 {
			t.Fatalf("extremities: %+v %v", details, err)
		}
		if n, err := e.TrimExtremities(ctx, roomID); err != nil || n != 1 {
			t.Fatalf("trim: %d %v", n, err)
		}
		if exts, _, _ := e.Extremities(ctx, roomID); len(exts) != 1 || exts[0] != branches[1] {
			t.Fatalf("after trim: %v, want the newer %s", exts, branches[1])
		}
		if head, err := st.LoadRoomHead(ctx, roomID); err != nil || len(head.Extremities) != 1 || head.Extremities[0] != branches[1] {
			t.Fatalf("stored after trim: %+v %v", head, err)
		}
		next, err := e.Send(ctx, SendRequest{RoomID: roomID, Sender: "@alice:a.test", Type: "m.room.message", Content: map[string]string{"body": "after"}})
		if err != nil {
			t.Fatal(err)
		}
		if prevs := next.PrevEventIDs(); len(prevs) != 1 || prevs[0] != branches[1] {
			t.Fatalf("next event's prev_events %v", prevs)
		}
		if n, err := e.TrimExtremities(ctx, roomID); err != nil || n != 0 {
			t.Fatalf("second trim: %d %v", n, err)
		}

		if _, err := e.Event(ctx, next.EventID()); err != nil {
			t.Fatal(err)
		}
		if err := e.Purge(ctx, roomID, func(ctx context.Context) (store.PurgedRoom, error) { return st.PurgeRoom(ctx, roomID) }); err != nil {
			t.Fatal(err)
		}
		if _, err := e.RoomVersion(ctx, roomID); err == nil {
			t.Fatal("purged room still has a version")
		}
		if evs, err := e.EventsByID(ctx, []string{next.EventID(), branches[0]}); err != nil || len(evs) != 0 {
			t.Fatalf("purged events still load: %d %v", len(evs), err)
		}
		if _, err := e.Send(ctx, SendRequest{RoomID: roomID, Sender: "@alice:a.test", Type: "m.room.message", Content: map[string]string{"body": "x"}}); err == nil {
			t.Fatal("sent into a purged room")
		}
		if _, _, err := e.Extremities(ctx, roomID); err == nil {
			t.Fatal("purged room has extremities")
		}
	})
}
