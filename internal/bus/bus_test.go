package bus

import (
	"context"
	"encoding/json"
	"reflect"
	"sync"
	"testing"
)

type roomChange struct {
	RoomID string `json:"room_id"`
}

func (roomChange) Topic() string { return "test.room" }

type userChange struct {
	UserID string `json:"user_id"`
}

func (userChange) Topic() string { return "test.user" }

// TestPublishOrderAndTopics checks that a change reaches exactly the
// listeners of its topic, in subscription order, before Publish returns.
func TestPublishOrderAndTopics(t *testing.T) {
	b := New()
	var heard []string
	b.Subscribe("a", func(_ context.Context, c Change) { heard = append(heard, "a:"+c.(roomChange).RoomID) }, "test.room")
	b.Subscribe("b", func(_ context.Context, c Change) {
		switch c := c.(type) {
		case roomChange:
			heard = append(heard, "b:"+c.RoomID)
		case userChange:
			heard = append(heard, "b:"+c.UserID)
		}
	}, "test.room", "test.user")
	b.Publish(context.Background(), roomChange{"!r"})
	b.Publish(context.Background(), userChange{"@u"})
	b.Publish(context.Background(), roomChange{"!s"})
	want := []string{"a:!r", "b:!r", "b:@u", "a:!s", "b:!s"}
	if !reflect.DeepEqual(heard, want) {
		t.Fatalf("heard %v, want %v", heard, want)
	}
	if got := b.Listeners("test.room"); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Fatalf("Listeners(test.room) = %v", got)
	}
	if got := b.Listeners("test.user"); !reflect.DeepEqual(got, []string{"b"}) {
		t.Fatalf("Listeners(test.user) = %v", got)
	}
}

// TestPublishWithoutListeners checks that a change nobody listens to is
// dropped quietly.
func TestPublishWithoutListeners(t *testing.T) {
	New().Publish(context.Background(), userChange{"@u"})
}

// TestChangesSerialise checks the promise that lets NATS replace the
// in-process bus: a change survives a JSON round trip.
func TestChangesSerialise(t *testing.T) {
	raw, err := json.Marshal(roomChange{"!r"})
	if err != nil {
		t.Fatal(err)
	}
	var back roomChange
	if err := json.Unmarshal(raw, &back); err != nil || back.RoomID != "!r" {
		t.Fatalf("round trip: %v %+v", err, back)
	}
}

// TestSubscribeWhilePublishing checks, under -race, that Publish reads
// the listener table without racing a late Subscribe.
func TestSubscribeWhilePublishing(t *testing.T) {
	b := New()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for range 100 {
			b.Publish(context.Background(), roomChange{"!r"})
		}
	}()
	go func() {
		defer wg.Done()
		for range 100 {
			b.Subscribe("late", func(context.Context, Change) {}, "test.room")
		}
	}()
	wg.Wait()
	if n := len(b.Listeners("test.room")); n != 100 {
		t.Fatalf("%d listeners, want 100", n)
	}
}
