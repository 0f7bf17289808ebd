package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/testdb"
)

// The load run's sizes, issue 20's by default; each has a variable so
// that a short run can be made (MYELIN_LOADRUN_MESSAGES=2000, ...).
type loadRunSizes struct {
	users, rooms, messages, senders, pollers, initialSyncs, pages int
	// after is how long after the load RSS is read again.
	after time.Duration
}

func loadRunSizesFromEnv(b *testing.B) loadRunSizes {
	s := loadRunSizes{users: 200, rooms: 100, messages: 20000, senders: 8, pollers: 10,
		initialSyncs: 50, pages: 200, after: time.Minute}
	for name, p := range map[string]*int{
		"USERS": &s.users, "ROOMS": &s.rooms, "MESSAGES": &s.messages, "SENDERS": &s.senders,
		"POLLERS": &s.pollers, "INITIAL_SYNCS": &s.initialSyncs, "PAGES": &s.pages,
	} {
		if v := os.Getenv("MYELIN_LOADRUN_" + name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				b.Fatalf("MYELIN_LOADRUN_%s: want a count, got %q", name, v)
			}
			*p = n
		}
	}
	if v := os.Getenv("MYELIN_LOADRUN_AFTER"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("MYELIN_LOADRUN_AFTER: %v", err)
		}
		s.after = d
	}
	// Senders and pollers are among the users, each sender has a room of
	// its own among the rooms.
	s.users = max(s.users, s.senders+s.pollers, 1)
	s.rooms = max(s.rooms, s.senders)
	s.senders = max(s.senders, 1)
	return s
}

// HeapProfileEnv names a directory: when set, BenchmarkMemoryLoadRun
// starts the server with its pprof listener (MYELIN_PPROF_ADDR) and
// writes the server's heap profile there when the load ends
// (loadrun-<engine>-peak.heap.pprof) and after the quiet minute
// (...-after.heap.pprof).
const HeapProfileEnv = "MYELIN_BENCH_HEAPPROFILE"

// BenchmarkMemoryLoadRun is issue 20's memory load run, on the built
// cmd/myelin in a process of its own, configured by MYELIN_* variables
// as an operator would (rate limits off, cheap bcrypt): it registers 200
// users, creates 100 rooms, sends 20,000 messages from 8 senders, half
// into one room and half into a room each, while 10 clients keep /sync
// long-polls parked in all of those rooms (so they are woken by every
// message), then runs initial syncs and pages /messages back through the
// shared room. It reports the server's RSS after start (idle-rss-MiB),
// its high-water mark through the run (peak-rss-MiB, VmHWM) and its RSS
// a minute after the load stops (after-rss-MiB; with the median of
// per-second samples over that minute's second half,
// after-rss-median-MiB), as well as the send
// rate and p99. One iteration; -benchtime 1x.
func BenchmarkMemoryLoadRun(b *testing.B) {
	for _, engine := range testdb.Engines() {
		b.Run(engine, func(b *testing.B) { memoryLoadRun(b, engine) })
	}
}

func memoryLoadRun(b *testing.B, engine string) {
	sz := loadRunSizesFromEnv(b)
	// MYELIN_LOADRUN_BIN runs a binary built before (another commit's,
	// for A/B runs) instead of building this tree's.
	bin := os.Getenv("MYELIN_LOADRUN_BIN")
	if bin == "" {
		bin = buildMyelin(b)
	}
	profDir := os.Getenv(HeapProfileEnv)
	var env []string
	var pprofAddr string
	if profDir != "" {
		pprofAddr = freePort(b, "127.0.0.1")
		env = append(env, "MYELIN_PPROF_ADDR="+pprofAddr)
	}
	p := startServeProcess(b, bin, engine, env...)
	h := &harness{b: b, base: p.base, hc: &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: 64, IdleConnTimeout: 5 * time.Minute, DisableCompression: true}}}
	ctx := context.Background()
	// The server's own start-up garbage is collected within a few
	// seconds of quiet (the runtime's forced GC is every 2 minutes, the
	// scavenger returns freed pages meanwhile).
	time.Sleep(5 * time.Second)
	idle := procStatusKB(b, p.pid, "VmRSS")

	var users []user
	rooms := make([]string, sz.rooms)
	var shared string
	senders, pollers := make([]user, sz.senders), make([]user, sz.pollers)
	timed(b, fmt.Sprintf("%d users, %d rooms", sz.users, sz.rooms), func() {
		users = h.registerMany("user", sz.users)
		copy(pollers, users)
		copy(senders, users[sz.pollers:])
		var err error
		if shared, err = h.createRoom(ctx, users[0], map[string]any{"preset": "public_chat"}); err != nil {
			b.Fatal(err)
		}
		if err := parallel(sz.rooms, 8, func(i int) error {
			id, err := h.createRoom(ctx, users[(sz.pollers+i)%sz.users], map[string]any{"preset": "public_chat"})
			rooms[i] = id
			return err
		}); err != nil {
			b.Fatal(err)
		}
		// Every user is in a room besides its own, the pollers and
		// senders in the shared room and every sender's room.
		if err := parallel(sz.users, 8, func(i int) error {
			if i >= sz.pollers+sz.senders {
				return h.join(ctx, users[i], rooms[i%sz.rooms])
			}
			if i > 0 {
				if err := h.join(ctx, users[i], shared); err != nil {
					return err
				}
			}
			for j := range sz.senders {
				if rooms[j] != "" && (i < sz.pollers || i-sz.pollers != j) {
					if err := h.join(ctx, users[i], rooms[j]); err != nil {
						return err
					}
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	})

	// The high-water mark after each phase shows which one sets the peak.
	hwm := func(phase string) {
		b.Logf("VmHWM after %s: %.1f MiB (RSS %.1f MiB)", phase,
			float64(procStatusKB(b, p.pid, "VmHWM"))/1024, float64(procStatusKB(b, p.pid, "VmRSS"))/1024)
	}
	hwm("setup")
	b.ResetTimer()
	// The pollers long-poll until the load ends.
	pollCtx, stopPolls := context.WithCancel(ctx)
	var wakeups atomic.Int64
	var polls sync.WaitGroup
	for _, u := range pollers {
		polls.Add(1)
		go func() {
			defer polls.Done()
			since := ""
			for pollCtx.Err() == nil {
				resp, err := h.sync(pollCtx, u, since, 30*time.Second)
				if err != nil {
					if pollCtx.Err() == nil {
						b.Errorf("poller %s: %v", u.ID, err)
					}
					return
				}
				since = resp.NextBatch
				wakeups.Add(1)
			}
		}()
	}
	body := message("a benchmark message of an ordinary length, about like this")
	var sendTimes []time.Duration
	var mu sync.Mutex
	send := func(n int, roomOf func(i int) string) {
		var sent atomic.Int64
		err := parallel(sz.senders, sz.senders, func(i int) error {
			var mine []time.Duration
			defer func() { mu.Lock(); sendTimes = append(sendTimes, mine...); mu.Unlock() }()
			for sent.Add(1) <= int64(n) {
				start := time.Now()
				if err := h.sendMessage(ctx, senders[i], roomOf(i), body); err != nil {
					return err
				}
				mine = append(mine, time.Since(start))
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	start := time.Now()
	send(sz.messages/2, func(int) string { return shared })
	hwm("sends into one room")
	send(sz.messages-sz.messages/2, func(i int) string { return rooms[i] })
	hwm("sends into a room each")
	sendElapsed := time.Since(start)
	stopPolls()
	polls.Wait()

	// Initial syncs of users in many rooms (the pollers) and few.
	if err := parallel(sz.initialSyncs, 4, func(i int) error {
		_, err := h.syncRaw(ctx, users[i%sz.users], "", 0)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	hwm("initial syncs")
	// Page /messages back through the shared room, 4 readers at once.
	if err := parallel(4, 4, func(r int) error {
		from := ""
		for i := r; i < sz.pages; i += 4 {
			q := url.Values{"dir": {"b"}, "limit": {"50"}}
			if from != "" {
				q.Set("from", from)
			}
			var page struct {
				End string `json:"end"`
			}
			path := clientV3 + "/rooms/" + url.PathEscape(shared) + "/messages?" + q.Encode()
			if err := h.do(ctx, http.MethodGet, path, pollers[r%len(pollers)].Token, nil, &page); err != nil {
				return err
			}
			// An empty end is the start of the room: begin again.
			from = page.End
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	peak := procStatusKB(b, p.pid, "VmHWM")
	atEnd := procStatusKB(b, p.pid, "VmRSS")
	if profDir != "" {
		writeHeapProfile(b, pprofAddr, filepath.Join(profDir, "loadrun-"+engine+"-peak.heap.pprof"))
	}
	h.hc.CloseIdleConnections()
	// The quiet minute is sampled every second as well: the figure at
	// its end is the target's, but a periodic worker that ran SQL in the
	// quiet check's last 10 s (a minute's ticker: the executable's SQLite
	// code mapped back until the next check trims it) moves that one
	// instant by several MiB, which the samples' median shows.
	var quiet []float64
	end := time.Now().Add(sz.after)
	for time.Until(end) > time.Second {
		time.Sleep(time.Second)
		quiet = append(quiet, float64(procStatusKB(b, p.pid, "VmRSS")))
	}
	time.Sleep(time.Until(end))
	after := procStatusKB(b, p.pid, "VmRSS")
	if profDir != "" {
		writeHeapProfile(b, pprofAddr, filepath.Join(profDir, "loadrun-"+engine+"-after.heap.pprof"))
		// The mappings, for what is outside Go's heap (SQLite's).
		if raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", p.pid)); err == nil {
			_ = os.WriteFile(filepath.Join(profDir, "loadrun-"+engine+"-after.smaps"), raw, 0o644)
		}
	}
	mib := func(kb uint64) float64 { return float64(kb) / 1024 }
	b.ReportMetric(mib(idle), "idle-rss-MiB")
	b.ReportMetric(mib(peak), "peak-rss-MiB")
	b.ReportMetric(mib(atEnd), "end-rss-MiB")
	b.ReportMetric(mib(after), "after-rss-MiB")
	if n := len(quiet); n > 0 {
		last := slices.Clone(quiet[n/2:])
		slices.Sort(last)
		b.ReportMetric(last[len(last)/2]/1024, "after-rss-median-MiB")
	}
	b.ReportMetric(float64(sz.messages)/sendElapsed.Seconds(), "events/s")
	b.ReportMetric(ms(percentile(sendTimes, 99)), "send-p99-ms")
	b.ReportMetric(float64(wakeups.Load()), "wakeups")
	b.Logf("RSS: idle %.1f MiB, peak %.1f MiB, at end %.1f MiB, %v later %.1f MiB",
		mib(idle), mib(peak), mib(atEnd), sz.after, mib(after))
}

// writeHeapProfile fetches the server's heap profile, after a
// collection (gc=1), from its pprof listener.
func writeHeapProfile(b *testing.B, addr, file string) {
	b.Helper()
	// The runtime's own figures (heap, stacks, GC metadata) beside it.
	if resp, err := http.Get("http://" + addr + "/debug/pprof/heap?debug=1"); err == nil {
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		_ = os.WriteFile(strings.TrimSuffix(file, ".pprof")+".txt", raw, 0o644)
	}
	resp, err := http.Get("http://" + addr + "/debug/pprof/heap?gc=1")
	if err != nil {
		b.Errorf("heap profile: %v", err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(file)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		b.Errorf("heap profile: %v", err)
	}
}

// startServeProcess starts the built server alone (no federation) on a
// loopback port, configured by MYELIN_* variables (serveEnv) plus env,
// and waits until its client API answers.
func startServeProcess(b *testing.B, bin, engine string, env ...string) myelinProcess {
	b.Helper()
	dir := b.TempDir()
	clientAddr := freePort(b, "127.0.0.1")
	return launchMyelin(b, bin, []string{"serve"}, append(serveEnv(dir, testdb.NewURL(b, engine), clientAddr), env...),
		dir, "http://"+clientAddr)
}
