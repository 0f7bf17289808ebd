package remote

import (
	"context"
	"reflect"
	"testing"
)

// TestJoinHolds: events are held only while a join of their room is in
// flight, handed back in arrival order to the join that stores the room
// (or to the last one to fail), and bounded, the oldest dropped.
func TestJoinHolds(t *testing.T) {
	var j joinHolds
	var got []int
	receive := func(i int) func(context.Context) { return func(context.Context) { got = append(got, i) } }
	run := func(fs []func(context.Context)) {
		for _, f := range fs {
			f(context.Background())
		}
	}

	if j.hold("!r:x", 1, receive(0)) {
		t.Fatal("held an event of a room no join is in flight for")
	}

	end := j.begin("!r:x")
	for i := 1; i <= 3; i++ {
		if !j.hold("!r:x", 1, receive(i)) {
			t.Fatalf("event %d not held during the join", i)
		}
	}
	if j.hold("!other:x", 1, receive(9)) {
		t.Fatal("held an event of another room")
	}
	run(end(true))
	if !reflect.DeepEqual(got, []int{1, 2, 3}) {
		t.Fatalf("received %v, want [1 2 3]", got)
	}
	if run(end(true)); len(got) != 3 {
		t.Fatalf("a second end ran the events again: %v", got)
	}
	if j.hold("!r:x", 1, receive(4)) {
		t.Fatal("held an event after the join was stored")
	}

	// Two joins of one room: the one that fails first leaves the events
	// to the other.
	got = nil
	first, second := j.begin("!r:x"), j.begin("!r:x")
	j.hold("!r:x", 1, receive(1))
	if fs := first(false); len(fs) != 0 {
		t.Fatalf("a failed join took %d events while another was in flight", len(fs))
	}
	if !j.hold("!r:x", 1, receive(2)) {
		t.Fatal("not held while the second join is in flight")
	}
	run(second(false))
	if !reflect.DeepEqual(got, []int{1, 2}) {
		t.Fatalf("the last join to end received %v, want [1 2]", got)
	}

	// The bound: the newest maxHeldPerRoom are kept.
	got = nil
	end = j.begin("!r:x")
	for i := range maxHeldPerRoom + 2 {
		j.hold("!r:x", 1, receive(i))
	}
	run(end(true))
	if len(got) != maxHeldPerRoom || got[0] != 2 || got[len(got)-1] != maxHeldPerRoom+1 {
		t.Fatalf("kept %d events from %d to %d, want the newest %d", len(got), got[0], got[len(got)-1], maxHeldPerRoom)
	}
	// And by bytes, the newest kept even when alone past the bound.
	got = nil
	end = j.begin("!r:x")
	j.hold("!r:x", maxHeldBytesPerRoom/2, receive(1))
	j.hold("!r:x", maxHeldBytesPerRoom/2, receive(2))
	j.hold("!r:x", 1, receive(3))
	j.hold("!r:x", maxHeldBytesPerRoom+1, receive(4))
	run(end(true))
	if !reflect.DeepEqual(got, []int{4}) {
		t.Fatalf("by bytes kept %v, want [4]", got)
	}
	if len(j.rooms) != 0 {
		t.Fatalf("%d rooms left in the table", len(j.rooms))
	}
}
