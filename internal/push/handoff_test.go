package push_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/push"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// TestFullQueueLeavesTheRoomUnlocked: with the worker far behind and
// its queue full, the next sender waits for room in the queue (nothing
// is lost), but not holding the room's lock, which the worker and every
// reader of the room need: the room's current state is still answered
// at once. The old engine waited under the lock (the 10,000-user freeze,
// docs/benchmarks.md "Scale curve").
func TestFullQueueLeavesTheRoomUnlocked(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		env := newEngineEnv(t, dbURL, nil, rooms.Options{})
		ctx, engine, stream := env.ctx, env.Engine, env.Stream
		room := env.createRoom(t)
		// Subscribed before push, so it hears of an event just before
		// push's queue takes it.
		var published atomic.Int64
		env.Bus.Subscribe("count", func(context.Context, bus.Change) { published.Add(1) }, rooms.TopicEvent)
		svc := env.push(push.Options{QueueSize: 1})
		release := svc.HoldEvaluation()
		env.run(t, svc, release)

		const events = 6
		sent := make(chan error, 1)
		go func() {
			for i := 0; i < events; i++ {
				if _, err := engine.SetState(ctx, room, alice, "m.room.topic", "", json.RawMessage(fmt.Sprintf(`{"topic":"t%d"}`, i))); err != nil {
					sent <- err
					return
				}
			}
			sent <- nil
		}()
		// The worker holds one batch and its queue one event: the sends
		// stop in push's Publish with events left to send.
		for last, still := int64(-1), 0; still < 20; time.Sleep(10 * time.Millisecond) {
			if n := published.Load(); n != last {
				last, still = n, 0
			} else {
				still++
			}
		}
		if n := published.Load(); n >= events {
			t.Fatalf("all %d sends were published with the worker held; the queue never filled", n)
		}
		read := make(chan error, 1)
		go func() { _, err := engine.CurrentState(ctx, room); read <- err }()
		select {
		case err := <-read:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the room's state waited on the push queue: a sender held the room's lock")
		}
		release()
		select {
		case err := <-sent:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the sends never finished")
		}
		waitPushed(t, svc, stream.Current())
	})
}
