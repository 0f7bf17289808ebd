package push_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/myelin-chat/myelin/internal/push"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// snapshotCounting counts the whole state snapshots the engine loads and
// the partial-state marks it reads.
type snapshotCounting struct {
	*store.DB
	loads, partialMarks atomic.Int64
}

func (s *snapshotCounting) LoadSnapshot(ctx context.Context, id int64) (store.Snapshot, error) {
	s.loads.Add(1)
	return s.DB.LoadSnapshot(ctx, id)
}

func (s *snapshotCounting) PartialState(ctx context.Context, roomID string) (store.PartialStateRoom, error) {
	s.partialMarks.Add(1)
	return s.DB.PartialState(ctx, roomID)
}

// TestMessagesOfAKnownStateLoadNoSnapshot: the push worker judges a
// message whose state it has worked out the members of (a message after
// a message) without asking the engine for the state again. With the
// engine's state cache too small to hold it, as for rooms of 5,000
// members at 10,000 users, each message of the room loaded the whole
// snapshot only to find it was the one it had. Nor does it read the
// room's partial-state mark, a query per message of a busy room (issue
// 20 item 2, docs/benchmarks.md "Push worker, fifth pass").
func TestMessagesOfAKnownStateLoadNoSnapshot(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		var st *snapshotCounting
		counting := func(db *store.DB) rooms.Store { st = &snapshotCounting{DB: db}; return st }
		// A state cache of a byte holds no state.
		env := newEngineEnv(t, dbURL, counting, rooms.Options{StateCacheBytes: 1})
		svc := env.push(push.Options{})
		env.run(t, svc, nil)
		// Two rooms taking turns: the cache's one entry is the other
		// room's state.
		var roomIDs []string
		for range 2 {
			room := env.createRoom(t)
			if _, err := env.Engine.SetMembership(env.ctx, rooms.MembershipRequest{Sender: bob, RoomID: room, Target: bob, Membership: "join"}); err != nil {
				t.Fatal(err)
			}
			roomIDs = append(roomIDs, room)
		}
		send := func(room string) {
			t.Helper()
			ev, err := env.Engine.Send(env.ctx, rooms.SendRequest{RoomID: room, Sender: alice, Type: "m.room.message", Content: map[string]any{"msgtype": "m.text", "body": "hi"}})
			if err != nil {
				t.Fatal(err)
			}
			waitPushed(t, svc, ev.StreamPos)
		}
		send(roomIDs[0])
		send(roomIDs[1])
		before, marksBefore := st.loads.Load(), st.partialMarks.Load()
		for range 5 {
			send(roomIDs[0])
			send(roomIDs[1])
		}
		if n := st.loads.Load() - before; n != 0 {
			t.Fatalf("%d snapshots loaded for 10 messages of known states", n)
		}
		if n := st.partialMarks.Load() - marksBefore; n != 0 {
			t.Fatalf("%d partial-state marks read for 10 messages of known states", n)
		}
	})
}
