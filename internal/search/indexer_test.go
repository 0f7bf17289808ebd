package search

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
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
