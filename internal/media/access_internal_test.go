package media

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/store"
)

// accessStore counts the batches of access times written.
type accessStore struct {
	Store
	batches []map[store.MediaRef]int64
	fail    bool
}

func (a *accessStore) SetMediaAccessTimes(_ context.Context, times map[store.MediaRef]int64) error {
	if a.fail {
		return errors.New("database down")
	}
	a.batches = append(a.batches, times)
	return nil
}

// TestAccessTimesBatched: a thousand reads of one media and one read of
// another cost one write of two rows, with the latest time; nothing to
// write is no write; a failed write keeps the notes for the next one.
func TestAccessTimesBatched(t *testing.T) {
	db := &accessStore{}
	clock := time.UnixMilli(1_000_000)
	s := &Service{db: db, log: slog.New(slog.NewTextHandler(io.Discard, nil)), now: func() time.Time { return clock },
		accessed: map[store.MediaRef]int64{}, accessWake: make(chan struct{}, 1)}
	for i := range 1000 {
		clock = time.UnixMilli(1_000_000 + int64(i))
		s.touch("hs1.test", "hot")
	}
	s.touch("hs1.test", "cold")
	ctx := context.Background()
	if err := s.FlushAccessTimes(ctx); err != nil {
		t.Fatal(err)
	}
	if len(db.batches) != 1 || len(db.batches[0]) != 2 {
		t.Fatalf("batches: %v", db.batches)
	}
	if got := db.batches[0][store.MediaRef{Origin: "hs1.test", MediaID: "hot"}]; got != 1_000_999 {
		t.Fatalf("hot media's time %d, want the last read 1000999", got)
	}
	if err := s.FlushAccessTimes(ctx); err != nil || len(db.batches) != 1 {
		t.Fatalf("an empty flush wrote: %v %v", err, db.batches)
	}
	db.fail = true
	s.touch("hs1.test", "again")
	if err := s.FlushAccessTimes(ctx); err == nil {
		t.Fatal("failed write not reported")
	}
	db.fail = false
	if err := s.FlushAccessTimes(ctx); err != nil || len(db.batches) != 2 || len(db.batches[1]) != 1 {
		t.Fatalf("notes lost after a failed write: %v %v", err, db.batches)
	}
}
