package presence

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
)

func ids(rows []store.Presence) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r.UserID)
	}
	return out
}

// TestRecentWindow: the ring answers as the store's one row per user:
// a user's latest change only, whatever order changes are stored in; a
// window below its floor is refused, and compaction raises the floor
// past the changes it drops.
func TestRecentWindow(t *testing.T) {
	r := newRecent(10, 6)
	for _, c := range []struct {
		user string
		pos  int64
	}{{"@a", 12}, {"@b", 11}, {"@c", 14}, {"@a", 13}, {"@old", 9}, {"@b", 10}} {
		r.add(store.Presence{UserID: c.user, StreamPos: c.pos})
	}
	if _, ok := r.window(9, 20); ok {
		t.Fatal("a window below the floor was answered")
	}
	for _, c := range []struct {
		after, upto int64
		want        []string
	}{
		{10, 20, []string{"@b", "@a", "@c"}},
		{10, 12, []string{"@b"}}, // @a's change at 12 is superseded by 13
		{11, 13, []string{"@a"}},
		{14, 20, nil},
	} {
		got, ok := r.window(c.after, c.upto)
		if !ok || !slices.Equal(ids(got), c.want) {
			t.Errorf("window(%d, %d) = %v, %v; want %v", c.after, c.upto, ids(got), ok, c.want)
		}
	}
	// Past the bound of 6, compaction drops the stale entry and the
	// oldest live ones down to 3 (@b at 11, @c at 14).
	for i, u := range []string{"@d", "@e", "@a", "@b"} {
		r.add(store.Presence{UserID: u, StreamPos: int64(15 + i)})
	}
	if r.floor != 14 || len(r.entries) != 4 {
		t.Fatalf("after compaction: floor %d, %d entries", r.floor, len(r.entries))
	}
	got, ok := r.window(14, 30)
	if !ok || !slices.Equal(ids(got), []string{"@d", "@e", "@a", "@b"}) {
		t.Fatalf("after compaction (floor %d): %v, %v", r.floor, ids(got), ok)
	}
	r.refresh(store.Presence{UserID: "@b", StreamPos: 18, LastActiveTS: 7})
	if got, _ := r.window(17, 18); len(got) != 1 || got[0].LastActiveTS != 7 {
		t.Fatalf("refresh: %+v", got)
	}
}

// countingStore counts the presence queries /sync makes.
type countingStore struct {
	*store.DB
	queries atomic.Int64
}

func (c *countingStore) PresenceChanges(ctx context.Context, viewer string, after, upto int64) ([]store.Presence, error) {
	c.queries.Add(1)
	return c.DB.PresenceChanges(ctx, viewer, after, upto)
}

// TestChangesFromRing: a window the ring covers asks the database
// nothing about presence (the cost that grew with the server), and gives
// the viewer's own change; an initial sync and a window older than the
// ring go to the store and give the same.
func TestChangesFromRing(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		f := newFixture(t, dbURL, true)
		counted := &countingStore{DB: f.db}
		f.svc.o.Store = counted
		f.svc.mates.st = counted
		// An incremental sync's token is past the stream's start.
		if err := f.svc.Set(ctx, alice, Unavailable, nil); err != nil {
			t.Fatal(err)
		}
		before := f.stream.Current()
		if err := f.svc.Set(ctx, alice, Online, nil); err != nil {
			t.Fatal(err)
		}
		if err := f.svc.Set(ctx, "@bob:hs1.test", Online, nil); err != nil {
			t.Fatal(err)
		}
		pos := f.stream.Current()
		evs, err := f.svc.Changes(ctx, alice, before, pos)
		if err != nil || len(evs) != 1 || evs[0].Sender != alice {
			t.Fatalf("Changes from the ring = %+v, %v", evs, err)
		}
		if n := counted.queries.Load(); n != 0 {
			t.Fatalf("a window the ring covers made %d presence queries", n)
		}
		for _, after := range []int64{0, before} {
			if after == before {
				f.svc.mu.Lock()
				f.svc.recent.floor = pos // as if the ring had dropped them
				f.svc.mu.Unlock()
			}
			evs, err = f.svc.Changes(ctx, alice, after, pos)
			if err != nil || len(evs) != 1 || evs[0].Sender != alice {
				t.Fatalf("Changes(%d, %d) from the store = %+v, %v", after, pos, evs, err)
			}
		}
		if n := counted.queries.Load(); n != 2 {
			t.Fatalf("store fallbacks made %d presence queries, want 2", n)
		}
	})
}
