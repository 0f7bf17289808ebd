package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/testdb"
)

// Issue 20 item 2's shape: 8 senders, into one room and into a room
// each. The shared room also has idle members, so that every event has
// recipients to count unread messages and evaluate push rules for, as
// in a room people actually sit in.
const (
	thruSenders      = 8
	thruSharedIdlers = 42
)

// BenchmarkSendThroughputProcess is issue 20 item 2's throughput test on
// the built cmd/myelin in a process of its own, so that the server's CPU
// per event (server-cpu-us/event, from /proc/<pid>/stat) is told apart
// from the load generator's (client-cpu-us/event, this process's): in
// one process the client's JSON and HTTP work counts against the same 2
// cores. 8 senders send MYELIN_THRU_EVENTS messages (10,000 unless set)
// as fast as they are answered, first all into one room of 50 members,
// then each into a room of its own; it reports events/s and the send
// p50/p99. -benchtime 1x.
func BenchmarkSendThroughputProcess(b *testing.B) {
	events := 10000
	if v := os.Getenv("MYELIN_THRU_EVENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("MYELIN_THRU_EVENTS: want a count, got %q", v)
		}
		events = n
	}
	bin := os.Getenv("MYELIN_LOADRUN_BIN")
	if bin == "" {
		bin = buildMyelin(b)
	}
	for _, engine := range testdb.Engines() {
		b.Run(engine, func(b *testing.B) {
			var env []string
			if os.Getenv(ProfileEnv) != "" {
				env = append(env, "MYELIN_PPROF_ADDR="+freePort(b, "127.0.0.1"))
			}
			p := startServeProcess(b, bin, engine, env...)
			h := &harness{b: b, base: p.base, hc: &http.Client{Transport: &http.Transport{
				MaxIdleConnsPerHost: 64, IdleConnTimeout: 5 * time.Minute, DisableCompression: true}}}
			b.Cleanup(h.hc.CloseIdleConnections)
			senders, shared, own := thruSetup(b, h)
			b.Run("shared-room", func(b *testing.B) {
				defer thruProfile(b, p, engine+"-shared-room")()
				thruLoad(b, h, p.pid, senders, events, func(int) string { return shared })
			})
			b.Run("room-per-user", func(b *testing.B) {
				defer thruProfile(b, p, engine+"-room-per-user")()
				thruLoad(b, h, p.pid, senders, events, func(i int) string { return own[i] })
			})
		})
	}
}

// thruProfile, when ProfileEnv names a directory, takes the server's CPU
// profile over the first MYELIN_THRU_PROFILE_SECONDS (10 unless set) of
// a part into thru-<part>.cpu.pprof; choose MYELIN_THRU_EVENTS so that
// the part lasts longer. The returned function waits for it.
func thruProfile(b *testing.B, p myelinProcess, part string) func() {
	secs := 10
	if v := os.Getenv("MYELIN_THRU_PROFILE_SECONDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("MYELIN_THRU_PROFILE_SECONDS: want seconds, got %q", v)
		}
		secs = n
	}
	return serverCPUProfileTo(b, p, time.Duration(secs)*time.Second, "thru-"+part+".cpu.pprof")
}

// thruSetup registers the senders and the idle members, creates the
// shared room (everyone in it) and a private room per sender.
func thruSetup(b *testing.B, h *harness) (senders []user, shared string, own []string) {
	ctx := context.Background()
	own = make([]string, thruSenders)
	timed(b, fmt.Sprintf("%d senders, a shared room of %d and a room each", thruSenders, thruSenders+thruSharedIdlers), func() {
		senders = h.registerMany("sender", thruSenders)
		idlers := h.registerMany("idle", thruSharedIdlers)
		var err error
		if shared, err = h.createRoom(ctx, senders[0], map[string]any{"preset": "public_chat"}); err != nil {
			b.Fatal(err)
		}
		members := append(append([]user(nil), senders[1:]...), idlers...)
		if err := parallel(len(members), 8, func(i int) error { return h.join(ctx, members[i], shared) }); err != nil {
			b.Fatal(err)
		}
		if err := parallel(thruSenders, 8, func(i int) error {
			id, err := h.createRoom(ctx, senders[i], map[string]any{"preset": "private_chat"})
			own[i] = id
			return err
		}); err != nil {
			b.Fatal(err)
		}
	})
	return senders, shared, own
}

// thruLoad has each sender send to its room until n events are sent in
// all, and reports the rate, the send latency and both processes' CPU.
func thruLoad(b *testing.B, h *harness, pid int, senders []user, n int, roomOf func(i int) string) {
	ctx := context.Background()
	body := message("a benchmark message of an ordinary length, about like this")
	var sent atomic.Int64
	var mu sync.Mutex
	var times []time.Duration
	var client cpuMeter
	serverStart := processCPUOf(b, pid)
	client.start()
	start := time.Now()
	err := parallel(len(senders), len(senders), func(i int) error {
		mine := make([]time.Duration, 0, n/len(senders)+1)
		defer func() { mu.Lock(); times = append(times, mine...); mu.Unlock() }()
		u, room := senders[i], roomOf(i)
		for sent.Add(1) <= int64(n) {
			t := time.Now()
			if err := h.sendMessage(ctx, u, room, body); err != nil {
				return err
			}
			mine = append(mine, time.Since(t))
		}
		return nil
	})
	elapsed := time.Since(start)
	client.stop()
	server := processCPUOf(b, pid) - serverStart
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
	b.ReportMetric(ms(percentile(times, 50)), "send-p50-ms")
	b.ReportMetric(ms(percentile(times, 99)), "send-p99-ms")
	b.ReportMetric(float64(server.Microseconds())/float64(n), "server-cpu-us/event")
	b.ReportMetric(float64(client.perOp(n).Microseconds()), "client-cpu-us/event")
	// The work the sends left behind (the push worker's last batches,
	// the search indexer's last gathering of up to 250 ms) runs after
	// the window: the server's CPU until it is quiet (under 2 ms of CPU
	// in 200 ms, a 1 % duty), counted in as well.
	drained := processCPUOf(b, pid)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		now := processCPUOf(b, pid)
		if now-drained < 2*time.Millisecond {
			break
		}
		drained = now
	}
	b.ReportMetric(float64((drained-serverStart).Microseconds())/float64(n), "server-cpu-us/event-drained")
}
