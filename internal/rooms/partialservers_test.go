package rooms

import (
	"context"
	"slices"
	"testing"

	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// TestServersInRoomOrNamedReadsTheMarkFirst: the servers an event of a
// partial-state room goes to include those the resident named, even when
// the room's state is completed while the state is being read (the load
// below clears the mark, as a completion landing then does). Reading the
// mark after the state dropped them: a join sent then never reached the
// resident server. A room whose state is not partial gets its members'
// servers alone.
func TestServersInRoomOrNamedReadsTheMarkFirst(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		e, db, _ := newTestEngine(t, dbURL)
		roomID, err := e.CreateRoom(ctx, CreateRequest{Creator: "@alice:a.test", Preset: PresetPublicChat})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.MarkPartialState(ctx, store.PartialStateRoom{RoomID: roomID, JoinEventID: "$join", Servers: []string{"resident.test"}}); err != nil {
			t.Fatal(err)
		}
		servers, state, err := e.ServersInRoomOrNamed(ctx, roomID, func(ctx context.Context) (StateMap, error) {
			if err := db.ClearPartialState(ctx, roomID); err != nil {
				return nil, err
			}
			return e.CurrentState(ctx, roomID)
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(servers, "resident.test") || !slices.Contains(servers, "a.test") {
			t.Errorf("servers of a room completed while its state was read: %v, want a.test and resident.test", servers)
		}
		if len(state) == 0 {
			t.Error("the state loaded is not returned")
		}
		servers, _, err = e.ServersInRoomOrNamed(ctx, roomID, func(ctx context.Context) (StateMap, error) {
			return e.CurrentState(ctx, roomID)
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(servers, []string{"a.test"}) {
			t.Errorf("servers of a room with its full state: %v, want [a.test]", servers)
		}
	})
}
