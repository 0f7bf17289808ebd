package push_test

import (
	"context"
	"crypto/ed25519"
	"sync/atomic"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/accountdata"
	"github.com/myelin-chat/myelin/internal/bus"
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
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		db, err := store.Open(ctx, dbURL, 4)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		st := &snapshotCounting{DB: db}
		b := bus.New()
		stream, err := rooms.OpenStream(ctx, db, b)
		if err != nil {
			t.Fatal(err)
		}
		_, priv, _ := ed25519.GenerateKey(nil)
		// A state cache of a byte holds no state.
		engine := rooms.New(st, stream, b, rooms.Options{ServerName: "a.test", KeyID: "ed25519:a", PrivateKey: priv, DefaultVersion: "10", StateCacheBytes: 1})
		svc := push.New(db, engine, accountdata.New(db, stream, b), push.Options{ServerName: "a.test", Bus: b})
		stopped := make(chan struct{})
		go func() { _ = svc.Run(ctx); close(stopped) }()
		defer func() { cancel(); <-stopped }()
		// Two rooms taking turns: the cache's one entry is the other
		// room's state.
		var roomIDs []string
		for range 2 {
			room, err := engine.CreateRoom(ctx, rooms.CreateRequest{Creator: "@alice:a.test", Preset: "public_chat"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := engine.SetMembership(ctx, rooms.MembershipRequest{Sender: "@bob:a.test", RoomID: room, Target: "@bob:a.test", Membership: "join"}); err != nil {
				t.Fatal(err)
			}
			roomIDs = append(roomIDs, room)
		}
		send := func(room string) {
			t.Helper()
			ev, err := engine.Send(ctx, rooms.SendRequest{RoomID: room, Sender: "@alice:a.test", Type: "m.room.message", Content: map[string]any{"msgtype": "m.text", "body": "hi"}})
			if err != nil {
				t.Fatal(err)
			}
			for deadline := time.Now().Add(10 * time.Second); svc.Through() < ev.StreamPos; time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("push never got through %d", ev.StreamPos)
				}
			}
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
