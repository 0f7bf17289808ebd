package store

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fillWAL writes about n bytes through the writer, in transactions of
// 1 MiB, into a scratch table.
func fillWAL(t *testing.T, db *DB, n int) {
	t.Helper()
	ctx := context.Background()
	if _, err := db.write.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS wal_fill (id INTEGER PRIMARY KEY, data BLOB)`); err != nil {
		t.Fatal(err)
	}
	blob := []byte(strings.Repeat("x", 4000))
	for written := 0; written < n; {
		err := db.tx(ctx, func(c conn) error {
			for i := 0; i < 256; i++ {
				if _, err := c.q.ExecContext(ctx, `INSERT INTO wal_fill (data) VALUES (?)`, blob); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		written += 256 * len(blob)
	}
}

// The checkpointer keeps the WAL bounded even though a reader pinned an
// old snapshot during a burst of writes (PASSIVE checkpoints alone never
// shrink the file), and it never stalls on a reader for long.
func TestCheckpointBoundsWAL(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "wal.db"), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fillWAL(t, db, 1<<20)

	// A reader holds a snapshot from before the burst.
	reader, err := db.read.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := reader.QueryRowContext(ctx, `SELECT count(*) FROM wal_fill`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	fillWAL(t, db, 3*walTruncateAbove/2)
	if got := db.WALSize(); got <= walTruncateAbove {
		t.Fatalf("WAL after the burst is %d bytes; the test needs more than %d", got, walTruncateAbove)
	}
	// While the reader lives the WAL cannot be emptied, but the attempt
	// gives up quickly instead of holding up the writer.
	start := time.Now()
	if busy, _, err := db.checkpoint(ctx); err != nil || !busy {
		t.Fatalf("checkpoint with a reader: busy %v, %v; want busy", busy, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("checkpoint with a reader took %v", d)
	}
	fillWAL(t, db, 4096) // the writer is not blocked
	if err := reader.Rollback(); err != nil {
		t.Fatal(err)
	}
	if busy, _, err := db.checkpoint(ctx); err != nil || busy {
		t.Fatalf("checkpoint without readers: busy %v, %v", busy, err)
	}
	// The file is kept for the writer to overwrite (emptying it cost an
	// ftruncate, and every later commit an append); its next commit
	// starts it over and cuts it back to journalSizeLimit.
	before := db.WALSize()
	if before == 0 {
		t.Fatal("the checkpoint emptied the WAL file; want it kept for the writer to reuse")
	}
	fillWAL(t, db, 4096)
	if got := db.WALSize(); got > walTruncateAbove || got >= before {
		t.Fatalf("WAL after the checkpoint and a commit is %d bytes (%d before), want at most %d", got, before, walTruncateAbove)
	}
}

// Once restarted, a WAL file that kept its size because no write came
// since is not restarted again: an idle server would otherwise take the
// writer for a RESTART checkpoint at every look.
func TestCheckpointRestartsOnce(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "wal.db"), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	fillWAL(t, db, 3*walTruncateAbove/2)
	if busy, _, err := db.checkpoint(ctx); err != nil || busy {
		t.Fatalf("checkpoint: busy %v, %v", busy, err)
	}
	if got := db.WALSize(); got <= walTruncateAbove {
		t.Fatalf("WAL after the restart is %d bytes; the test needs the file kept above %d", got, walTruncateAbove)
	}
	// The writer is taken: a second RESTART would wait for it until the
	// context ends.
	held, err := db.write.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	wait, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if busy, _, err := db.checkpoint(wait); err != nil || busy {
		t.Fatalf("checkpoint of an idle, restarted WAL: busy %v, %v; want neither (no RESTART)", busy, err)
	}
}

// A clean shutdown leaves no WAL content behind, even while a handler
// that outlived it still holds a read connection (SQLite's own
// checkpoint when the last connection closes would then never run).
func TestCloseTruncatesWAL(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "wal.db")
	db, err := Open(ctx, path, 4)
	if err != nil {
		t.Fatal(err)
	}
	fillWAL(t, db, 4<<20)
	if db.WALSize() == 0 {
		t.Fatal("no WAL written")
	}
	straggler, err := db.read.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer straggler.Close()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > 0 {
		t.Fatalf("WAL left after Close: %d bytes", fi.Size())
	}
}

// synchronous is FULL unless configured otherwise: an event answered 200
// survives a power cut.
func TestSynchronousOption(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		opts []Option
		want int
	}{{nil, 2}, {[]Option{Synchronous("full")}, 2}, {[]Option{Synchronous("normal")}, 1}} {
		db, err := Open(ctx, filepath.Join(t.TempDir(), "s.db"), 2, c.opts...)
		if err != nil {
			t.Fatal(err)
		}
		for name, pool := range map[string]interface {
			QueryRowContext(context.Context, string, ...any) *sql.Row
		}{"write": db.write, "read": db.read, "checkpointer": db.checkpointer} {
			var got int
			if err := pool.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("%d options: %s pool synchronous = %d, want %d", len(c.opts), name, got, c.want)
			}
		}
		db.Close()
	}
	if _, err := Open(ctx, filepath.Join(t.TempDir(), "s.db"), 2, Synchronous("off")); err == nil {
		t.Fatal("synchronous=off accepted")
	}
}

// RunCheckpoints does not wait for its interval when the WAL has grown
// past the limit: under sustained sends it grows by tens of MiB a second.
func TestRunCheckpointsReactsToWALSize(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "wal.db"), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		db.RunCheckpoints(ctx, time.Hour)
	}()
	defer func() { cancel(); <-done }()
	fillWAL(t, db, 3*walTruncateAbove/2)
	// The restarted file is cut back at the writer's next commit.
	deadline := time.Now().Add(5 * time.Second)
	for db.WALSize() > walTruncateAbove {
		if time.Now().After(deadline) {
			t.Fatalf("WAL still %d bytes 5 s after passing %d", db.WALSize(), walTruncateAbove)
		}
		time.Sleep(20 * time.Millisecond)
		fillWAL(t, db, 4096)
	}
}

// Close does not wait long for a reader still inside a query: shutdown
// has seconds.
func TestCloseDoesNotWaitForReaders(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "wal.db"), 4)
	if err != nil {
		t.Fatal(err)
	}
	fillWAL(t, db, 1<<20)
	reader, err := db.read.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Rollback()
	var n int
	if err := reader.QueryRowContext(ctx, `SELECT count(*) FROM wal_fill`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	fillWAL(t, db, 1<<20)
	start := time.Now()
	db.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v behind a reader", d)
	}
}

// The one writer connection keeps at least writerCacheKiB of page cache
// whatever the readers are given: a group commit touches more pages
// than a reader's small cache holds, and read them back at every
// commit.
func TestWriterCacheSize(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "c.db"), 2, CacheKiB(256))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for name, c := range map[string]struct {
		pool *sql.DB
		want int
	}{"write": {db.write, -writerCacheKiB}, "read": {db.read, -256}, "checkpointer": {db.checkpointer, -256}} {
		var got int
		if err := c.pool.QueryRowContext(ctx, "PRAGMA cache_size").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("%s pool cache_size = %d, want %d", name, got, c.want)
		}
	}
}

// TestCheckpointSkipsUnchangedWAL: RunCheckpoints' step runs no SQL
// while nothing was written since a checkpoint copied the whole WAL, and
// runs again after any write, whether it appends to the log or starts
// it over, and after walQuietCheckpoint all the same.
func TestCheckpointSkipsUnchangedWAL(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "wal.db"), 4)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var w walWatch
	now := time.Unix(1000, 0)
	step := func(want bool, what string) {
		t.Helper()
		ran, busy, err := db.checkpointChanged(ctx, &w, now)
		if err != nil || busy || ran != want {
			t.Fatalf("%s: checkpoint ran %v (busy %v, %v), want %v", what, ran, busy, err, want)
		}
	}
	fillWAL(t, db, 4096)
	step(true, "after a write")
	step(false, "nothing written since")
	step(false, "nothing written since, again")
	// Copied whole and unread, the log starts over with the next write.
	fillWAL(t, db, 4096)
	step(true, "after a write that started the log over")
	step(false, "nothing written since")
	// A reader of the last snapshot keeps the log from starting over:
	// the next write appends to it.
	reader, err := db.read.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := reader.QueryRowContext(ctx, `SELECT count(*) FROM wal_fill`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	fillWAL(t, db, 4096)
	if err := reader.Rollback(); err != nil {
		t.Fatal(err)
	}
	step(true, "after a write appended to the log")
	step(false, "nothing written since")
	now = now.Add(walQuietCheckpoint)
	step(true, "unchanged for walQuietCheckpoint")
}
