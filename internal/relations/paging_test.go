package relations

import (
	"context"
	"slices"
	"testing"

	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/testdb"
)

func ids(evs []*rooms.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.EventID()
	}
	return out
}

// TestChildrenAndThreads pages a parent's children both ways and a
// room's threads, most recently active first, with the tokens to go on.
func TestChildrenAndThreads(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL)
		ctx := context.Background()
		root := f.send(t, alice, map[string]any{"body": "root"})
		var kids []*rooms.Event
		for range 3 {
			kids = append(kids, f.send(t, bob, map[string]any{"body": "ref", "m.relates_to": rel(Reference, root.EventID())}))
		}
		f.send(t, bob, map[string]any{"body": "thread", "m.relates_to": rel(Thread, root.EventID())})
		upper := f.engine.Stream().Current()
		q := Query{RoomID: f.roomID, Parent: root.EventID(), RelType: Reference, Depth: 1}

		page, next, err := f.agg.Children(ctx, carol, q, upper, NoBound, upper, 2, true)
		if err != nil || !slices.Equal(ids(page), ids([]*rooms.Event{kids[2], kids[1]})) || next == NoBound {
			t.Fatalf("newest first: %v next %d %v", ids(page), next, err)
		}
		page, next, err = f.agg.Children(ctx, carol, q, next, NoBound, upper, 2, true)
		if err != nil || !slices.Equal(ids(page), ids(kids[:1])) || next != NoBound {
			t.Fatalf("second page: %v next %d %v", ids(page), next, err)
		}
		page, next, err = f.agg.Children(ctx, carol, q, 0, NoBound, upper, 10, false)
		if err != nil || !slices.Equal(ids(page), ids(kids)) || next != NoBound {
			t.Fatalf("oldest first: %v next %d %v", ids(page), next, err)
		}

		other := f.send(t, alice, map[string]any{"body": "second root"})
		f.send(t, carol, map[string]any{"body": "thread", "m.relates_to": rel(Thread, other.EventID())})
		upper = f.engine.Stream().Current()
		roots, next, err := f.agg.Threads(ctx, carol, f.roomID, "", upper, upper, 10)
		if err != nil || !slices.Equal(ids(roots), []string{other.EventID(), root.EventID()}) || next != -1 {
			t.Fatalf("threads: %v next %d %v", ids(roots), next, err)
		}
		roots, _, err = f.agg.Threads(ctx, carol, f.roomID, carol, upper, upper, 10)
		if err != nil || !slices.Equal(ids(roots), []string{other.EventID()}) {
			t.Fatalf("carol's threads: %v %v", ids(roots), err)
		}
		roots, next, err = f.agg.Threads(ctx, carol, f.roomID, "", upper, upper, 1)
		if err != nil || len(roots) != 1 || next < 0 {
			t.Fatalf("first thread page: %v next %d %v", ids(roots), next, err)
		}
	})
}
