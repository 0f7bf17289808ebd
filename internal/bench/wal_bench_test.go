package bench

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/testdb"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// WALDurationEnv sets how long BenchmarkSustainedSendWAL sends (a Go
// duration); the default is the 24 s in which the WAL once grew to 1.6 GB.
const WALDurationEnv = "MYELIN_BENCH_WAL_DURATION"

// BenchmarkSustainedSendWAL is SQLite under sustained load: 4 users send
// into a shared room as fast as answered while 2 members long-poll /sync
// without pause, for a fixed time (WALDurationEnv) whatever b.N is (run
// it with -benchtime 1x). Every 100 ms it samples the size of the
// write-ahead log file; it reports the largest (wal-max-MiB, which must
// stay under 64 MiB), the database's size at the end, the events sent
// and their rate.
func BenchmarkSustainedSendWAL(b *testing.B) {
	d := 24 * time.Second
	if v := os.Getenv(WALDurationEnv); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			b.Fatalf("%s: %v", WALDurationEnv, err)
		}
	}
	path := testdb.NewURL(b, "sqlite")
	h := newHarness(b, testserver.Start(b, path, benchConfig))
	ctx := context.Background()
	users := h.registerMany("wal", 6)
	senders, syncers := users[:4], users[4:]
	room, err := h.createRoom(ctx, users[0], map[string]any{"preset": "public_chat"})
	if err != nil {
		b.Fatal(err)
	}
	for _, u := range users[1:] {
		if err := h.join(ctx, u, room); err != nil {
			b.Fatal(err)
		}
	}
	size := func(p string) int64 {
		fi, err := os.Stat(p)
		if err != nil {
			return 0
		}
		return fi.Size()
	}

	b.ResetTimer()
	runCtx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var sent, syncs atomic.Int64
	var maxWAL atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, len(users))
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
				if s := size(path + "-wal"); s > maxWAL.Load() {
					maxWAL.Store(s)
				}
			}
		}
	}()
	body := message("a benchmark message of an ordinary length, about like this")
	for _, u := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for runCtx.Err() == nil {
				if err := h.sendMessage(runCtx, u, room, body); err != nil {
					if runCtx.Err() == nil {
						errs <- err
					}
					return
				}
				sent.Add(1)
			}
		}()
	}
	for _, u := range syncers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			since := ""
			for runCtx.Err() == nil {
				resp, err := h.sync(runCtx, u, since, 30*time.Second)
				if err != nil {
					if runCtx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
						errs <- err
					}
					return
				}
				since = resp.NextBatch
				syncs.Add(1)
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	const mib = 1 << 20
	b.ReportMetric(float64(maxWAL.Load())/mib, "wal-max-MiB")
	b.ReportMetric(float64(size(path+"-wal"))/mib, "wal-end-MiB")
	b.ReportMetric(float64(size(path))/mib, "db-MiB")
	b.ReportMetric(float64(sent.Load()), "events")
	b.ReportMetric(float64(sent.Load())/d.Seconds(), "events/s")
	b.ReportMetric(float64(syncs.Load()), "syncs")
}
