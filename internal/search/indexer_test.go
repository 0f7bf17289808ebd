package search

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// refusingStore is an index that refuses some entries, as PostgreSQL
// refused text with NUL: a whole batch holding one fails.
type refusingStore struct {
	Store
	rows []store.EventRow

	mu        sync.Mutex
	indexed   map[int64]string
	high, low int64
}

func (s *refusingStore) SearchPosition(context.Context) (int64, int64, error) { return 0, 0, nil }

func (s *refusingStore) SearchableEvents(_ context.Context, after, upto int64, limit int) ([]store.EventRow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.EventRow
	for _, r := range s.rows {
		if r.StreamPos > after && r.StreamPos <= upto && len(out) < limit {
			out = append(out, r)
		}
	}
	return out, nil
}

func (s *refusingStore) BackfilledSearchableEvents(context.Context, int64, int) ([]store.EventRow, error) {
	return nil, nil
}

func (s *refusingStore) IndexSearch(_ context.Context, add []store.SearchEntry, _ []string, high, low int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range add {
		if strings.Contains(e.Value, "poison") {
			return errors.New("refused")
		}
	}
	for _, e := range add {
		s.indexed[e.EventNID] = e.Value
	}
	s.high, s.low = high, low
	return nil
}

// send stores a message at the stream's next position and tells the
// indexer, as the room engine does; it returns the position.
func (s *refusingStore) send(stream *rooms.StreamGen, ix *Indexer) int64 {
	pos := stream.Next()
	s.mu.Lock()
	s.rows = append(s.rows, store.EventRow{NID: pos, EventID: "$m", RoomID: "!r:hs1.test", Type: "m.room.message",
		StreamPos: pos, JSON: `{"content":{"body":"hello"}}`})
	s.mu.Unlock()
	stream.Done(pos)
	ix.Publish(rooms.Notification{Event: &rooms.Event{StreamPos: pos}})
	return pos
}

// TestIndexerSkipsRefusedEvent: an event the index refuses is skipped;
// the events around it are indexed and the position moves past it, so
// that one bad message cannot stop search for good.
func TestIndexerSkipsRefusedEvent(t *testing.T) {
	msg := func(pos int64, body string) store.EventRow {
		return store.EventRow{NID: pos, EventID: "$e" + body, RoomID: "!r:hs1.test", Type: "m.room.message", Sender: "@a:hs1.test",
			StreamPos: pos, JSON: `{"content":{"msgtype":"m.text","body":"` + body + `"}}`}
	}
	st := &refusingStore{rows: []store.EventRow{msg(1, "before"), msg(2, "poison"), msg(3, "nul\\u0000byte"), msg(4, "after")},
		indexed: map[int64]string{}}
	ix := NewIndexer(st, rooms.NewStreamGen(4, nil), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); ix.Run(ctx) }()
	defer func() { cancel(); <-done }()
	wait, stop := context.WithTimeout(ctx, 5*time.Second)
	defer stop()
	ix.WaitFor(wait, 4)
	if wait.Err() != nil {
		t.Fatal("the indexer did not get past the refused event")
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	want := map[int64]string{1: "before", 3: "nul byte", 4: "after"}
	if len(st.indexed) != len(want) || st.high != 4 {
		t.Fatalf("indexed %v up to %d, want %v up to 4", st.indexed, st.high, want)
	}
	for nid, v := range want {
		if st.indexed[nid] != v {
			t.Fatalf("event %d indexed as %q, want %q", nid, st.indexed[nid], v)
		}
	}
}

// countingStore counts the indexer's reads of backfilled history.
type countingStore struct {
	refusingStore
	backfillReads atomic.Int32
}

func (s *countingStore) BackfilledSearchableEvents(context.Context, int64, int) ([]store.EventRow, error) {
	s.backfillReads.Add(1)
	return nil, nil
}

// TestIndexerReadsBackfillOnlyWhenDue: new messages do not make the
// indexer look for backfilled history each time (a query per burst of
// messages on the busiest path); it looks at start, then at most every
// backfillEvery while events come, and a look it skipped is made up for
// without waiting for another event; an idle indexer does not look.
func TestIndexerReadsBackfillOnlyWhenDue(t *testing.T) {
	st := &countingStore{refusingStore: refusingStore{indexed: map[int64]string{}}}
	stream := rooms.NewStreamGen(0, nil)
	ix := NewIndexer(st, stream, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); ix.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor := func(pos int64) {
		t.Helper()
		wait, stop := context.WithTimeout(ctx, 5*time.Second)
		defer stop()
		ix.WaitFor(wait, pos)
		if wait.Err() != nil {
			t.Fatalf("the indexer did not reach %d", pos)
		}
	}
	waitFor(0)
	if n := st.backfillReads.Load(); n != 1 {
		t.Fatalf("%d backfill reads at start, want 1", n)
	}
	for i := 0; i < 3; i++ {
		waitFor(st.send(stream, ix))
	}
	if n := st.backfillReads.Load(); n != 1 {
		t.Fatalf("%d backfill reads after 3 new messages, want still 1", n)
	}
	start := time.Now()
	for st.backfillReads.Load() != 2 {
		if time.Since(start) > 5*time.Second {
			t.Fatal("the backfill read skipped for the new messages was not made up for")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(backfillEvery + backfillEvery/2)
	if n := st.backfillReads.Load(); n != 2 {
		t.Fatalf("%d backfill reads while idle, want still 2", n)
	}
}

// TestIndexerGathersAtMostABatch: the gathering wait after the stream
// moves ends once a full batch (indexBatch events) has come, however
// long the wait, so that a longer wait only gathers more into one
// transaction and no transaction outgrows a batch. No search waits
// here: nothing sends the indexer its urgent signal.
func TestIndexerGathersAtMostABatch(t *testing.T) {
	st := &refusingStore{indexed: map[int64]string{}}
	stream := rooms.NewStreamGen(0, nil)
	ix := NewIndexer(st, stream, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	ix.delay = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); ix.Run(ctx) }()
	defer func() { cancel(); <-done }()
	indexedUpTo := func(pos int64) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			ix.mu.Lock()
			high, loaded, advanced := ix.high, ix.loaded, ix.advanced
			ix.mu.Unlock()
			if loaded && high >= pos {
				return
			}
			select {
			case <-advanced:
			case <-deadline:
				t.Fatalf("indexed up to %d, want %d; a full batch must end the gathering wait", high, pos)
			}
		}
	}
	indexedUpTo(0)
	// However the burst falls around the first catch-up, the indexer
	// can be left short of a batch behind it, never a batch or more.
	const burst = 2 * indexBatch
	for i := 0; i < burst; i++ {
		st.send(stream, ix)
	}
	indexedUpTo(burst - indexBatch + 1)
}
