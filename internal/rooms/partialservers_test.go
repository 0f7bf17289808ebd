package rooms

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
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

// completionProbe calls during once the store has completed a room's
// partial state, before the engine has dropped what it cached.
type completionProbe struct {
	*store.DB
	during func()
}

func (p *completionProbe) CompletePartialState(ctx context.Context, roomID string, pos int64, missing map[roommodel.StateKey]int64, memberships map[string]string) ([]int64, error) {
	snapshots, err := p.DB.CompletePartialState(ctx, roomID, pos, missing, memberships)
	if err == nil && p.during != nil {
		p.during()
	}
	return snapshots, err
}

// TestPartialUntilCachesDropped: the store clears a room's partial-state
// mark in the completion's transaction, but the states the engine cached
// while it was partial are dropped after it; until then PartialState
// still answers partial, with the named servers, so that a reader never
// takes a cached partial state for the full one. Then it answers full.
func TestPartialUntilCachesDropped(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		_, db, _ := newTestEngine(t, dbURL)
		probe := &completionProbe{DB: db}
		e := newEngineOn(t, db, probe, bus.New())
		roomID, err := e.CreateRoom(ctx, CreateRequest{Creator: "@alice:a.test", Preset: PresetPublicChat})
		if err != nil {
			t.Fatal(err)
		}
		state, err := e.CurrentState(ctx, roomID)
		if err != nil {
			t.Fatal(err)
		}
		joins, err := e.EventsByNID(ctx, []int64{state[roommodel.StateKey{Type: spec.MRoomMember, StateKey: "@alice:a.test"}]})
		if err != nil || len(joins) != 1 {
			t.Fatalf("alice's join: %v %v", joins, err)
		}
		// A room with its full state is awaited at once (AwaitFullState
		// asks PartialState under its own lock).
		awaitReturns(t, e, roomID, nil)
		if err := db.MarkPartialState(ctx, store.PartialStateRoom{RoomID: roomID, JoinEventID: joins[0].EventID(), Servers: []string{"resident.test"}}); err != nil {
			t.Fatal(err)
		}
		asked := false
		var awaited chan error
		probe.during = func() {
			asked = true
			// One awaiting the room now is woken once it is complete.
			awaited = make(chan error, 1)
			go func() { awaited <- e.AwaitFullState(ctx, roomID) }()
			partial, named, err := e.PartialState(ctx, roomID)
			if err != nil || !partial || !slices.Equal(named, []string{"resident.test"}) {
				t.Errorf("PartialState between the store's completion and the caches' drop: %v %v %v, want partial with [resident.test]", partial, named, err)
			}
		}
		if _, err := e.CompleteStoredPartialState(ctx, roomID, nil); err != nil {
			t.Fatal(err)
		}
		if !asked {
			t.Fatal("the store's completion was not reached")
		}
		awaitReturns(t, e, roomID, awaited)
		if partial, _, err := e.PartialState(ctx, roomID); err != nil || partial {
			t.Errorf("PartialState after the completion: %v %v, want full", partial, err)
		}
	})
}

// awaitReturns fails the test unless AwaitFullState of the room (begun
// before, when awaited is not nil) returns: a deadlock shows as a hang,
// bounded here.
func awaitReturns(t *testing.T, e *Engine, roomID string, awaited chan error) {
	t.Helper()
	if awaited == nil {
		awaited = make(chan error, 1)
		go func() { awaited <- e.AwaitFullState(context.Background(), roomID) }()
	}
	select {
	case err := <-awaited:
		if err != nil {
			t.Fatalf("AwaitFullState: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("AwaitFullState never returned")
	}
}
