package rooms

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// TestFullListenerQueueCannotFreezeARoom is the 10,000-user freeze in
// small: a listener with a bounded queue that blocks its publisher when
// full (as push's does), whose worker asks for the room's current state
// (the room's lock) for every event. With the queue full, a sender must
// not wait on it while holding the room's lock, or the worker never gets
// the lock and never frees the queue. The worker must still hear of
// every event, in the order the room stored them.
func TestFullListenerQueueCannotFreezeARoom(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		e, _, _ := newTestEngine(t, dbURL)
		room, err := e.CreateRoom(ctx, CreateRequest{Creator: "@alice:a.test", Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		queue := make(chan Notification, 1)
		var entered atomic.Int32
		e.bus.Subscribe("slow", func(_ context.Context, c bus.Change) {
			n := c.(Notification)
			if n.Event.RoomID().String() != room {
				return
			}
			entered.Add(1)
			queue <- n
		}, TopicEvent)

		// The worker takes the first event and, like push evaluating
		// a batch, works on it while senders fill the queue again; only
		// then does it need the room's lock.
		const events = 5
		taken, release := make(chan struct{}), make(chan struct{})
		heard := make(chan []int64, 1)
		go func() {
			var got []int64
			for len(got) < events {
				n := <-queue
				if len(got) == 0 {
					close(taken)
					<-release
				}
				if _, err := e.CurrentState(ctx, room); err != nil {
					t.Error(err)
				}
				got = append(got, n.Event.StreamPos)
			}
			heard <- got
		}()

		sent := make(chan error, events)
		send := func(i int) {
			_, err := e.SetState(ctx, room, "@alice:a.test", "m.room.topic", "", json.RawMessage(fmt.Sprintf(`{"topic":"t%d"}`, i)))
			sent <- err
		}
		send(0)
		<-taken
		// The second fills the queue; the third waits in the listener,
		// which the old engine did under the room's lock.
		send(1)
		go send(2)
		waitFor(t, func() bool { return entered.Load() == 3 })
		// Later senders line up behind it for the room.
		for i := 3; i < events; i++ {
			go send(i)
		}
		close(release)

		deadline := time.After(20 * time.Second)
		for i := 0; i < events; i++ {
			select {
			case err := <-sent:
				if err != nil {
					t.Fatal(err)
				}
			case <-deadline:
				t.Fatalf("%d of %d sends returned: the room froze", i, events)
			}
		}
		select {
		case got := <-heard:
			for i := 1; i < len(got); i++ {
				if got[i] <= got[i-1] {
					t.Fatalf("listener heard positions %v, not in stream order", got)
				}
			}
		case <-deadline:
			t.Fatal("the listener's worker froze")
		}
	})
}

// TestOutboxPublishesInOrderOnce has many unlockers flush one room's
// outbox at once: every notification is published once, in queue order,
// and each flusher returns only when its own are published.
func TestOutboxPublishesInOrderOnce(t *testing.T) {
	var o outbox
	var got []int64
	publish := func(n Notification) { got = append(got, n.Event.StreamPos) }
	const n = 200
	done := make(chan struct{}, n)
	for i := 1; i <= n; i++ {
		seq := o.add(Notification{Event: &Event{StreamPos: int64(i)}})
		go func() {
			o.flush(publish, seq)
			o.mu.Lock()
			if o.published < seq {
				t.Errorf("flush(%d) returned with %d published", seq, o.published)
			}
			o.mu.Unlock()
			done <- struct{}{}
		}()
	}
	for i := 0; i < n; i++ {
		<-done
	}
	if len(got) != n {
		t.Fatalf("%d published, want %d", len(got), n)
	}
	for i, p := range got {
		if p != int64(i+1) {
			t.Fatalf("published %v, not in queue order", got)
		}
	}
}

// waitFor polls cond for up to ten seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("condition not met in 10s")
		}
	}
}
