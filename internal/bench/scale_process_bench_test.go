package bench

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/testdb"
)

// Issue 20 item 3, the scale curve: the same activity (10 % of the users
// long-polling /sync, 50 messages a second) on servers that hold 10×
// more users, rooms and memberships at each step, to show whether what a
// message costs, and what the server holds in memory, grows with what is
// stored rather than with what is active.

// ScaleUsersEnv chooses the steps of BenchmarkScaleCurve (comma-separated
// user counts); ScaleWindowEnv how long the activity is measured at each
// (a duration; 30 s by default).
// ScalePresenceEnv=off runs the server without presence, to tell its
// fan-out (every sender coming online wakes the long-polls of everyone
// sharing a room with them) from the rest of a message's cost.
const (
	ScaleUsersEnv    = "MYELIN_SCALE_USERS"
	ScaleWindowEnv   = "MYELIN_SCALE_WINDOW"
	ScalePresenceEnv = "MYELIN_SCALE_PRESENCE"
)

const (
	scaleRoomsPerUser = 10
	scaleMaxRoom      = 5000
	scaleRate         = 50 // messages a second
	scaleReaderRooms  = 100
	// scaleLocalpart is the application service's user namespace.
	scaleLocalpart = "scale_"
)

// BenchmarkScaleCurve is issue 20's scale curve, one sub-benchmark per
// step (users=100, users=1000, users=10000) and engine, on the built
// cmd/myelin in a process of its own. Every user is in 10 rooms of mixed
// sizes (2 to 5,000 members, scaleRoomSizes), one more user in 100 rooms.
// While a tenth of the users long-poll /sync and 50 messages a second go
// into rooms chosen at random, it reports the server's CPU time per
// message (cpu-ms/msg, /proc/<pid>/stat over the window), send p99,
// wake-up p99 (from the send to a long-poll returning the message), RSS
// during the window (rss-MiB, its high-water mark window-hwm-MiB) and at
// the end of the setup (setup-hwm-MiB), then the initial sync of the
// 100-room user (Element's lazy-loading filter, and without filter), the
// database's size, and the RSS of the server restarted on that database
// after 5 s of quiet (restart-rss-MiB: what it holds for what is stored
// alone). The users are an application service's (registered by
// MYELIN_APPSERVICE_FILES), so that setting up 10,000 of them costs no
// bcrypt. One iteration; -benchtime 1x. The whole curve takes about an
// hour on 2 cores: contrib/bench/scale-curve.sh.
func BenchmarkScaleCurve(b *testing.B) {
	steps := []int{100, 1000, 10000}
	if v := os.Getenv(ScaleUsersEnv); v != "" {
		steps = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 10 {
				b.Fatalf("%s: want user counts of 10 or more, got %q", ScaleUsersEnv, v)
			}
			steps = append(steps, n)
		}
	}
	window := 30 * time.Second
	if v := os.Getenv(ScaleWindowEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second {
			b.Fatalf("%s: want a duration of a second or more, got %q", ScaleWindowEnv, v)
		}
		window = d
	}
	// Built once, in this benchmark's directory, which outlives the steps'.
	bin := os.Getenv("MYELIN_LOADRUN_BIN")
	if bin == "" {
		bin = buildMyelin(b)
	}
	for _, n := range steps {
		for _, engine := range testdb.Engines() {
			b.Run(fmt.Sprintf("users=%d/%s", n, engine), func(b *testing.B) {
				scaleCurveStep(b, bin, engine, n, window)
			})
		}
	}
}

// scaleRoomSizes lays out n users' memberships, 10 each: a fifth of
// them in each class of rooms, of min(5000, n), min(500, n), 50, 10 and
// 2 to 4 members, so that rooms are many and mostly small, and a few
// hold most of the users, as on a real server. Sizes sum to exactly
// 10·n, each at least 2 and at most n.
func scaleRoomSizes(n int) []int {
	total := scaleRoomsPerUser * n
	var sizes []int
	used := 0
	classes := []int{scaleMaxRoom, 500, 50, 10, 0}
	for c, size := range classes {
		budget := total * (c + 1) / len(classes)
		for k := 0; used < budget; k++ {
			s := min(size, n)
			if size == 0 {
				s = 2 + k%3
			}
			s = max(2, min(s, budget-used))
			// A remainder of one membership joins the room before.
			if budget-used-s == 1 {
				s++
				if s > n {
					s -= 2
				}
			}
			sizes = append(sizes, s)
			used += s
		}
	}
	return sizes
}

// scaleRoomMembers is each room's members, as indexes of users: room
// after room takes the next users round the circle of n, so that every
// user is in exactly 10 rooms (the sizes sum to 10 circles) and, rooms
// being at most n, never twice in one.
func scaleRoomMembers(n int, sizes []int) [][]int {
	members := make([][]int, len(sizes))
	next := 0
	for r, s := range sizes {
		members[r] = make([]int, s)
		for k := range s {
			members[r][k] = next % n
			next++
		}
	}
	return members
}

// scaleAS writes the application service's registration (no URL: it
// receives nothing, and so costs the server nothing but what its users
// do) and returns its file and as_token.
func scaleAS(b *testing.B, dir string) (file, token string) {
	token = "scale_as_token"
	reg := `id: scale
url: null
as_token: ` + token + `
hs_token: scale_hs_token
sender_localpart: scalebot
rate_limited: false
namespaces:
  users:
    - exclusive: true
      regex: "@` + scaleLocalpart + `.*"
`
	file = filepath.Join(dir, "scale-as.yaml")
	if err := os.WriteFile(file, []byte(reg), 0o600); err != nil {
		b.Fatal(err)
	}
	return file, token
}

// registerAS registers localpart as the service's user and logs it in
// (an access token of its own, for /sync as a client would).
func (h *harness) registerAS(ctx context.Context, asToken, localpart string) (user, error) {
	var resp struct {
		UserID      string `json:"user_id"`
		AccessToken string `json:"access_token"`
	}
	body := map[string]any{"type": "m.login.application_service", "username": localpart}
	if err := h.do(ctx, http.MethodPost, clientV3+"/register", asToken, body, &resp); err != nil {
		return user{}, err
	}
	return user{ID: resp.UserID, Token: resp.AccessToken}, nil
}

// Filters: the pollers' and the reader's are Element's (members loaded
// lazily), the first sync of a poller asks for no rooms at all, only for
// where the stream is.
const (
	scaleFilter     = `{"room":{"state":{"lazy_load_members":true},"timeline":{"limit":20}}}`
	scaleSkipFilter = `{"room":{"rooms":[]},"presence":{"types":[]},"account_data":{"types":[]}}`
)

func (h *harness) syncFiltered(ctx context.Context, u user, since, filter string, timeout time.Duration) ([]byte, error) {
	q := url.Values{"timeout": {fmt.Sprint(timeout.Milliseconds())}}
	if since != "" {
		q.Set("since", since)
	}
	if filter != "" {
		q.Set("filter", filter)
	}
	return h.doRaw(ctx, http.MethodGet, clientV3+"/sync?"+q.Encode(), u.Token, nil)
}

func scaleCurveStep(b *testing.B, bin, engine string, n int, window time.Duration) {
	dir := b.TempDir()
	dbURL := testdb.NewURL(b, engine)
	asFile, asToken := scaleAS(b, dir)
	clientAddr := freePort(b, "127.0.0.1")
	metricsAddr := freePort(b, "127.0.0.1")
	env := append(serveEnv(dir, dbURL, clientAddr), "MYELIN_APPSERVICE_FILES="+asFile, "MYELIN_METRICS_LISTEN="+metricsAddr)
	if os.Getenv(ProfileEnv) != "" {
		env = append(env, "MYELIN_PPROF_ADDR="+freePort(b, "127.0.0.1"))
	}
	switch v := os.Getenv(ScalePresenceEnv); v {
	case "", "on":
	case "off":
		env = append(env, "MYELIN_PRESENCE=false")
	default:
		b.Fatalf("%s: want on or off, got %q", ScalePresenceEnv, v)
	}
	p := launchMyelin(b, bin, []string{"serve"}, env, dir, "http://"+clientAddr)
	tr := &http.Transport{MaxIdleConnsPerHost: 2048, IdleConnTimeout: 5 * time.Minute, DisableCompression: true}
	b.Cleanup(tr.CloseIdleConnections)
	h := &harness{b: b, base: p.base, hc: &http.Client{Transport: tr}}
	ctx := context.Background()

	sizes := scaleRoomSizes(n)
	members := scaleRoomMembers(n, sizes)
	users := make([]user, n)
	rooms := make([]string, len(sizes))
	var reader user
	timed(b, fmt.Sprintf("%d users in %d rooms", n, len(sizes)), func() {
		if err := parallel(n, 8, func(i int) error {
			u, err := h.registerAS(ctx, asToken, fmt.Sprintf("%s%d", scaleLocalpart, i))
			users[i] = u
			return err
		}); err != nil {
			b.Fatal(err)
		}
		var err error
		if reader, err = h.registerAS(ctx, asToken, scaleLocalpart+"reader"); err != nil {
			b.Fatal(err)
		}
		if err := parallel(len(sizes), 8, func(r int) error {
			id, err := h.createRoom(ctx, users[members[r][0]], map[string]any{"preset": "public_chat"})
			rooms[r] = id
			return err
		}); err != nil {
			b.Fatal(err)
		}
		// The joins go round the rooms, the k-th member of each in turn,
		// so that the workers are in different rooms, not queued on one.
		type job struct{ room, member int }
		var jobs []job
		for k := 1; k < min(n, scaleMaxRoom); k++ {
			for r, m := range members {
				if k < len(m) {
					jobs = append(jobs, job{r, m[k]})
				}
			}
		}
		if err := parallel(len(jobs), 8, func(i int) error {
			return h.join(ctx, users[jobs[i].member], rooms[jobs[i].room])
		}); err != nil {
			b.Fatal(err)
		}
		// The reader is in rooms spread over the classes; on a small
		// server with fewer rooms, also in rooms of its own.
		step := max(1, len(rooms)/scaleReaderRooms)
		var joins []string
		for r := 0; r < len(rooms) && len(joins) < scaleReaderRooms; r += step {
			joins = append(joins, rooms[r])
		}
		if err := parallel(len(joins), 8, func(i int) error { return h.join(ctx, reader, joins[i]) }); err != nil {
			b.Fatal(err)
		}
		if err := parallel(scaleReaderRooms-len(joins), 8, func(int) error {
			_, err := h.createRoom(ctx, reader, map[string]any{"preset": "private_chat"})
			return err
		}); err != nil {
			b.Fatal(err)
		}
	})
	// What the setup left to background workers (push rules evaluated
	// for every member at every join, the search index) is done before
	// the window, so that its CPU is not counted as the messages'.
	timed(b, "background work after the setup", func() { waitQuiet(b, p.pid, "http://"+metricsAddr+"/metrics") })
	setupHWM := procStatusKB(b, p.pid, "VmHWM")
	b.Logf("after setup: RSS %.1f MiB, VmHWM %.1f MiB", kibToMiB(procStatusKB(b, p.pid, "VmRSS")), kibToMiB(setupHWM))

	// The pollers (every tenth user) first learn where the stream is,
	// then long-poll until the end, reading the messages' sequence
	// numbers out of their bodies.
	msgs := int(window.Seconds()*scaleRate) + scaleRate
	sentAt := make([]atomic.Int64, msgs)
	var wakeMu sync.Mutex
	var wakeups []time.Duration
	pollCtx, stopPolls := context.WithCancel(ctx)
	defer stopPolls()
	var polls sync.WaitGroup
	var ready, polled atomic.Int64
	var pollers []user
	for i := 0; i < n; i += 10 {
		pollers = append(pollers, users[i])
	}
	for _, u := range pollers {
		polls.Add(1)
		go func() {
			defer polls.Done()
			raw, err := h.syncFiltered(pollCtx, u, "", scaleSkipFilter, 0)
			if err != nil {
				b.Errorf("first sync of %s: %v", u.ID, err)
				return
			}
			var first struct {
				NextBatch string `json:"next_batch"`
			}
			if err := json.Unmarshal(raw, &first); err != nil {
				b.Errorf("first sync of %s: %v", u.ID, err)
				return
			}
			ready.Add(1)
			since := first.NextBatch
			var mine []time.Duration
			defer func() { wakeMu.Lock(); wakeups = append(wakeups, mine...); wakeMu.Unlock() }()
			for pollCtx.Err() == nil {
				raw, err := h.syncFiltered(pollCtx, u, since, scaleFilter, 30*time.Second)
				at := time.Now().UnixNano()
				if err != nil {
					if pollCtx.Err() == nil {
						b.Errorf("poller %s: %v", u.ID, err)
					}
					return
				}
				resp, err := decodeSync(raw)
				if err != nil {
					b.Errorf("poller %s: %v", u.ID, err)
					return
				}
				since = resp.NextBatch
				polled.Add(1)
				for _, room := range resp.Rooms.Join {
					for _, ev := range room.Timeline.Events {
						seq, ok := strings.CutPrefix(ev.Content.Body, "scale ")
						if i, err := strconv.Atoi(seq); ok && err == nil && i < len(sentAt) {
							if t := sentAt[i].Load(); t != 0 {
								mine = append(mine, time.Duration(at-t))
							}
						}
					}
				}
			}
		}()
	}
	for deadline := time.Now().Add(10 * time.Minute); ready.Load() < int64(len(pollers)); {
		if time.Now().After(deadline) || b.Failed() {
			b.Fatalf("%d of %d pollers started", ready.Load(), len(pollers))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The first polls' presence changes settle before the window.
	time.Sleep(3 * time.Second)

	// 50 messages a second, each into a room chosen at random from a
	// member chosen at random, each on its own goroutine so that a slow
	// answer does not slow the rate (an open loop, as clients are).
	rng := rand.New(rand.NewPCG(uint64(n), 20))
	var sendMu sync.Mutex
	var sendTimes []time.Duration
	var sends sync.WaitGroup
	var sendErrs atomic.Int64
	var rss []uint64
	sampled := make(chan struct{})
	peakReset := resetPeakRSS(p.pid)
	cpu0 := processCPUOf(b, p.pid)
	polled0 := polled.Load()
	b.ResetTimer()
	start := time.Now()
	go func() {
		// RSS once a second through the window, for its mean.
		defer close(sampled)
		for time.Since(start) < window {
			rss = append(rss, procStatusKB(b, p.pid, "VmRSS"))
			time.Sleep(time.Second)
		}
	}()
	stopProfile := serverCPUProfile(b, p, window, n, engine)
	sent := 0
	for ; sent < msgs; sent++ {
		// Message i is due at i/50 s: a loop that fell behind (a loaded
		// machine) catches up rather than sending fewer.
		due := start.Add(time.Duration(sent) * time.Second / scaleRate)
		if due.Sub(start) >= window {
			break
		}
		time.Sleep(time.Until(due))
		r := rng.IntN(len(rooms))
		from := users[members[r][rng.IntN(len(members[r]))]]
		seq := sent
		sends.Add(1)
		go func() {
			defer sends.Done()
			t0 := time.Now()
			sentAt[seq].Store(t0.UnixNano())
			if err := h.sendMessage(ctx, from, rooms[r], message(fmt.Sprintf("scale %d", seq))); err != nil {
				if sendErrs.Add(1) == 1 {
					b.Errorf("send: %v", err)
				}
				return
			}
			d := time.Since(t0)
			sendMu.Lock()
			sendTimes = append(sendTimes, d)
			sendMu.Unlock()
		}()
	}
	sends.Wait()
	// The last messages' wake-ups come in before the CPU is read.
	time.Sleep(time.Second)
	cpu := processCPUOf(b, p.pid) - cpu0
	pollCount := polled.Load() - polled0
	elapsed := time.Since(start)
	b.StopTimer()
	windowHWM := procStatusKB(b, p.pid, "VmHWM")
	stopProfile()
	<-sampled
	stopPolls()
	polls.Wait()
	var rssSum uint64
	for _, v := range rss {
		rssSum += v
	}

	// The 100-room user's initial syncs: as Element asks (the first
	// from rooms not in the server's caches, then again), then all
	// members' state, as an older client would.
	var lazy, lazyWarm, full time.Duration
	for _, f := range []struct {
		filter string
		d      *time.Duration
	}{{scaleFilter, &lazy}, {scaleFilter, &lazyWarm}, {"", &full}} {
		t0 := time.Now()
		raw, err := h.syncFiltered(ctx, reader, "", f.filter, 0)
		if err != nil {
			b.Fatal(err)
		}
		*f.d = time.Since(t0)
		resp, err := decodeSync(raw)
		if err != nil {
			b.Fatal(err)
		}
		if len(resp.Rooms.Join) != scaleReaderRooms {
			b.Fatalf("initial sync of the reader: %d rooms, want %d", len(resp.Rooms.Join), scaleReaderRooms)
		}
	}
	dbSize := databaseSize(b, engine, dbURL)

	// What the server holds for what is stored alone: restarted on the
	// same database, after the same quiet as BenchmarkMemoryLoadRun's idle.
	tr.CloseIdleConnections()
	p.stop()
	p2 := launchMyelin(b, bin, []string{"serve"}, env, dir, "http://"+clientAddr)
	time.Sleep(5 * time.Second)
	restartRSS := procStatusKB(b, p2.pid, "VmRSS")

	b.ReportMetric(ms(cpu)/float64(len(sendTimes)), "cpu-ms/msg")
	b.ReportMetric(ms(percentile(sendTimes, 99)), "send-p99-ms")
	b.ReportMetric(ms(percentile(wakeups, 99)), "wakeup-p99-ms")
	b.ReportMetric(float64(len(wakeups))/float64(max(1, len(sendTimes))), "wakeups/msg")
	// Long-polls also return for what is not a message (presence above
	// all: a sender who was offline comes online), and each costs a sync.
	b.ReportMetric(float64(pollCount)/float64(max(1, len(sendTimes))), "polls/msg")
	b.ReportMetric(float64(len(sendTimes))/elapsed.Seconds(), "msg/s")
	b.ReportMetric(kibToMiB(rssSum/uint64(max(1, len(rss)))), "rss-MiB")
	if peakReset {
		b.ReportMetric(kibToMiB(windowHWM), "window-hwm-MiB")
	}
	b.ReportMetric(kibToMiB(setupHWM), "setup-hwm-MiB")
	b.ReportMetric(kibToMiB(restartRSS), "restart-rss-MiB")
	b.ReportMetric(ms(lazy), "initial-sync-ms")
	b.ReportMetric(ms(lazyWarm), "initial-sync-warm-ms")
	b.ReportMetric(ms(full), "initial-sync-full-ms")
	b.ReportMetric(float64(dbSize)/(1<<20), "db-MiB")
	b.Logf("%d users, %d rooms, %d pollers: %d messages in %v, %d wake-ups; CPU %v (%.2f ms/msg); RSS %.1f MiB (window peak %.1f, setup peak %.1f, restarted %.1f); initial sync %v lazy, %v full; database %.1f MiB",
		n, len(rooms), len(pollers), len(sendTimes), elapsed.Round(time.Millisecond), len(wakeups), cpu,
		ms(cpu)/float64(max(1, len(sendTimes))), kibToMiB(rssSum/uint64(max(1, len(rss)))), kibToMiB(windowHWM),
		kibToMiB(setupHWM), kibToMiB(restartRSS), lazy.Round(time.Millisecond), full.Round(time.Millisecond), float64(dbSize)/(1<<20))
}

// databaseSize is what the database takes on disk: SQLite's file with
// its write-ahead log, or PostgreSQL's pg_database_size.
func databaseSize(b *testing.B, engine, dbURL string) int64 {
	b.Helper()
	if engine == "sqlite" {
		var total int64
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if fi, err := os.Stat(dbURL + suffix); err == nil {
				total += fi.Size()
			}
		}
		return total
	}
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var size int64
	if err := db.QueryRow("SELECT pg_database_size(current_database())").Scan(&size); err != nil {
		b.Fatal(err)
	}
	return size
}

// serverCPUProfile, when ProfileEnv names a directory, takes the
// server's CPU profile over the window from its pprof listener
// (MYELIN_PPROF_ADDR in its environment) into
// scale-<users>-<engine>.cpu.pprof, and its heap profile at the end
// (.heap.pprof); the returned function waits for them.
func serverCPUProfile(b *testing.B, p myelinProcess, window time.Duration, n int, engine string) func() {
	return serverCPUProfileTo(b, p, window, fmt.Sprintf("scale-%d-%s.cpu.pprof", n, engine))
}

// serverCPUProfileTo is serverCPUProfile into the named file (the heap
// profile beside it, .heap.pprof for .cpu.pprof).
func serverCPUProfileTo(b *testing.B, p myelinProcess, window time.Duration, name string) func() {
	dir := os.Getenv(ProfileEnv)
	addr := ""
	for _, kv := range p.env {
		if v, ok := strings.CutPrefix(kv, "MYELIN_PPROF_ADDR="); ok {
			addr = v
		}
	}
	if dir == "" || addr == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(window.Seconds())))
		if err != nil {
			b.Errorf("server CPU profile: %v", err)
			return
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, name), raw, 0o644)
		}
		if err != nil {
			b.Errorf("server CPU profile: %v", err)
		}
		// What the heap holds at the window's end, beside it.
		writeHeapProfile(b, addr, filepath.Join(dir, strings.TrimSuffix(name, ".cpu.pprof")+".heap.pprof"))
	}()
	return func() { <-done }
}

// waitQuiet waits until the server's background workers have no
// backlog (myelin_background_backlog on its metrics listener, read from
// metricsURL) and the process uses less than a tenth of a core over two
// seconds running (20 minutes at most). CPU alone was not enough: on a
// busy machine the push worker, evaluating the setup's joins into rooms
// of 5,000, was slowed below a tenth of a core for 2 s and its backlog
// was then measured as the messages' CPU. A server that exports no
// backlog (a build before the gauge) is waited for by CPU only.
func waitQuiet(b *testing.B, pid int, metricsURL string) {
	b.Helper()
	start := time.Now()
	quiet := 0
	peak := map[string]float64{}
	var drained time.Duration
	exported := true
	for deadline := time.Now().Add(20 * time.Minute); quiet < 2 && time.Now().Before(deadline); {
		c0 := processCPUOf(b, pid)
		time.Sleep(time.Second)
		busy := processCPUOf(b, pid)-c0 >= 100*time.Millisecond
		if exported {
			backlogs, err := scrapeBacklogs(metricsURL)
			switch {
			case err != nil:
				b.Logf("background work: reading the server's backlog: %v", err)
				busy = true
			case len(backlogs) == 0:
				exported = false
				b.Logf("background work: the server exports no backlog; waiting for its CPU alone")
			}
			left := 0.0
			for worker, v := range backlogs {
				peak[worker] = max(peak[worker], v)
				left += v
			}
			if left > 0 {
				busy = true
			} else if drained == 0 && err == nil {
				drained = time.Since(start)
			}
		}
		if busy {
			quiet = 0
		} else {
			quiet++
		}
	}
	if exported {
		b.Logf("background work: backlogs drained after %v (largest seen: %v), then CPU below a tenth of a core for 2 s, after %v",
			drained.Round(time.Second), peak, time.Since(start).Round(time.Second))
	}
}

// scrapeBacklogs reads myelin_background_backlog by worker from the
// server's metrics.
func scrapeBacklogs(metricsURL string) (map[string]float64, error) {
	resp, err := http.Get(metricsURL)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", metricsURL, resp.Status)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(raw), "\n") {
		rest, ok := strings.CutPrefix(line, `myelin_background_backlog{worker="`)
		if !ok {
			continue
		}
		worker, value, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return nil, fmt.Errorf("myelin_background_backlog{worker=%q}: %w", worker, err)
		}
		out[worker] = v
	}
	return out, nil
}
