package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/signing"
	"github.com/myelin-chat/myelin/internal/testdb"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// The size of BenchmarkRemoteJoinBigRoom's room (issue 14): 10,000
// members and 50,000 state events in all; MYELIN_BENCH_BIGROOM_MEMBERS
// and MYELIN_BENCH_BIGROOM_STATE make it smaller for quick profiles.
var (
	bigRoomMembers = envInt("MYELIN_BENCH_BIGROOM_MEMBERS", 10_000)
	bigRoomState   = envInt("MYELIN_BENCH_BIGROOM_STATE", 50_000)
)

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// BenchmarkRemoteJoinBigRoom: a user of hs2 joins a room of hs1 with
// 10,000 members and 50,000 state events, with a partial-state join
// (omit_members, hs2's default) and with a full one. It reports the time
// until POST /join answers (join-ms), from then until a first message is
// sent (first-send-ms), from the join request until hs2 holds the full
// state (full-state-ms), the peak Go heap in use (heap-peak-MiB) and the
// process's peak RSS (rss-peak-MiB), both from the join request until
// the full state is stored. Both servers run in the benchmark's process:
// those memory figures are of both (see docs/benchmarks.md). One
// iteration each; run with -benchtime 1x.
func BenchmarkRemoteJoinBigRoom(b *testing.B) {
	for _, engine := range testdb.Engines() {
		for _, partial := range []bool{true, false} {
			name := engine + "/partial-state"
			if !partial {
				name = engine + "/full-state"
			}
			b.Run(name, func(b *testing.B) { remoteJoinBigRoom(b, engine, partial) })
		}
	}
}

func remoteJoinBigRoom(b *testing.B, engine string, partial bool) {
	net := testserver.StartNetwork(b, engine, 2, func(i int, c *config.Config) {
		benchConfig(c)
		c.Federation.PartialStateJoins = partial
		// A send_join of 50,000 events takes longer than the tests' 10 s.
		c.Federation.RequestTimeout = 5 * time.Minute
	})
	hs1, hs2 := net.Servers[0], net.Servers[1]
	var roomID string
	timed(b, fmt.Sprintf("a room of %d members and %d state events", bigRoomMembers, bigRoomState), func() {
		roomID = buildBigRoom(b, hs1)
	})
	h := newHarness(b, hs2)
	ctx := context.Background()
	bob, err := h.register(ctx, "bob")
	if err != nil {
		b.Fatal(err)
	}

	mem := startMemSampler()
	var cpu cpuMeter
	b.ResetTimer()
	cpu.start()
	// The profile (MYELIN_BENCH_CPUPROFILE) covers the join alone, both
	// servers' part of it: the resync after it would drown it.
	stopProfile := profile(b)
	start := time.Now()
	path := clientV3 + "/join/" + url.PathEscape(roomID) + "?server_name=hs1.test"
	if err := h.do(ctx, http.MethodPost, path, bob.Token, []byte("{}"), nil); err != nil {
		b.Fatal(err)
	}
	joined := time.Now()
	stopProfile()
	if err := h.sendMessage(ctx, bob, roomID, message("hello, big room")); err != nil {
		b.Fatal(err)
	}
	sent := time.Now()
	for {
		p, _, err := hs2.Engine().PartialState(ctx, roomID)
		if err != nil {
			b.Fatal(err)
		}
		if !p {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	full := time.Now()
	cpu.stop()
	b.StopTimer()
	heap, rss := mem.stop()
	b.ReportMetric(ms(joined.Sub(start)), "join-ms")
	b.ReportMetric(ms(sent.Sub(joined)), "first-send-ms")
	b.ReportMetric(ms(full.Sub(start)), "full-state-ms")
	b.ReportMetric(float64(heap)/(1<<20), "heap-peak-MiB")
	b.ReportMetric(float64(rss)/(1<<20), "rss-peak-MiB")
	b.ReportMetric(ms(cpu.total), "cpu-ms")
	// The joining server ends up with every member.
	var members struct {
		Joined map[string]any `json:"joined"`
	}
	if err := h.do(ctx, http.MethodGet, clientV3+"/rooms/"+url.PathEscape(roomID)+"/joined_members", bob.Token, nil, &members); err != nil {
		b.Fatal(err)
	}
	if len(members.Joined) != bigRoomMembers+2 {
		b.Fatalf("hs2 sees %d joined members, want %d", len(members.Joined), bigRoomMembers+2)
	}
}

// buildBigRoom makes a room of hs1 with bigRoomMembers members (users
// of hs1 without accounts) and bigRoomState state events, fast: the
// events are built and signed here with hs1's key, as its users would
// have sent them, and stored the way a joining server stores a
// send_join answer (the engine's ImportJoin: outliers and one state
// snapshot), the join of one more member on top. Sending them one by one
// would store a snapshot per event. Room version 10: its room IDs are
// chosen, not derived from the create event.
func buildBigRoom(b *testing.B, hs1 *testserver.Server) string {
	raw, err := os.ReadFile(hs1.Config.SigningKeyPath())
	if err != nil {
		b.Fatal(err)
	}
	key, err := signing.Parse(string(raw))
	if err != nil {
		b.Fatal(err)
	}
	v := gomatrixserverlib.MustGetRoomVersion(gomatrixserverlib.RoomVersionV10)
	roomID := "!big:hs1.test"
	owner := "@owner:hs1.test"
	var prev string
	var depth int64
	ts := time.Now().Add(-time.Hour)
	build := func(sender, typ string, stateKey *string, content any, auth ...string) gomatrixserverlib.PDU {
		c, err := json.Marshal(content)
		if err != nil {
			b.Fatal(err)
		}
		depth++
		proto := &gomatrixserverlib.ProtoEvent{SenderID: sender, RoomID: roomID, Type: typ, StateKey: stateKey,
			Depth: depth, Content: c, AuthEvents: append([]string{}, auth...), PrevEvents: []string{}}
		if prev != "" {
			proto.PrevEvents = []string{prev}
		}
		pdu, err := v.NewEventBuilderFromProtoEvent(proto).Build(ts.Add(time.Duration(depth)*time.Millisecond),
			spec.ServerName("hs1.test"), gomatrixserverlib.KeyID(key.ID), key.Private)
		if err != nil {
			b.Fatal(err)
		}
		prev = pdu.EventID()
		return pdu
	}
	sk := func(s string) *string { return &s }
	create := build(owner, spec.MRoomCreate, sk(""), map[string]any{"creator": owner, "room_version": "10"})
	ownerJoin := build(owner, spec.MRoomMember, sk(owner), map[string]any{"membership": "join"}, create.EventID())
	power := build(owner, spec.MRoomPowerLevels, sk(""), map[string]any{"users": map[string]int{owner: 100}, "state_default": 50},
		create.EventID(), ownerJoin.EventID())
	base := []string{create.EventID(), power.EventID()}
	rules := build(owner, spec.MRoomJoinRules, sk(""), map[string]any{"join_rule": "public"}, append(base, ownerJoin.EventID())...)
	history := build(owner, spec.MRoomHistoryVisibility, sk(""), map[string]any{"history_visibility": "shared"}, append(base, ownerJoin.EventID())...)
	name := build(owner, spec.MRoomName, sk(""), map[string]any{"name": "Big room"}, append(base, ownerJoin.EventID())...)
	state := []gomatrixserverlib.PDU{create, ownerJoin, power, rules, history, name}
	joinAuth := append(base, rules.EventID())
	for i := 1; i < bigRoomMembers; i++ {
		user := fmt.Sprintf("@member%05d:hs1.test", i)
		state = append(state, build(user, spec.MRoomMember, sk(user), map[string]any{"membership": "join"}, joinAuth...))
	}
	for i := 0; len(state) < bigRoomState; i++ {
		state = append(state, build(owner, "org.example.bench", sk(fmt.Sprintf("k%05d", i)), map[string]any{"i": i},
			append(base, ownerJoin.EventID())...))
	}
	last := fmt.Sprintf("@member%05d:hs1.test", bigRoomMembers)
	join := build(last, spec.MRoomMember, sk(last), map[string]any{"membership": "join"}, joinAuth...)
	if _, err := hs1.Engine().ImportJoin(context.Background(), join, state, nil); err != nil {
		b.Fatal(err)
	}
	return roomID
}

// memSampler follows the process's Go heap in use and its peak RSS.
type memSampler struct {
	done chan struct{}
	wg   sync.WaitGroup
	peak atomic.Uint64
}

// startMemSampler resets the kernel's peak RSS mark (clear_refs 5) and
// samples the heap every 10 ms until stop.
func startMemSampler() *memSampler {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	m := &memSampler{done: make(chan struct{})}
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	m.wg.Go(func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > m.peak.Load() {
				m.peak.Store(v)
			}
			select {
			case <-m.done:
				return
			case <-t.C:
			}
		}
	})
	return m
}

// stop ends sampling and returns the heap's peak and the RSS high-water
// mark (VmHWM; 0 where /proc is not there), in bytes.
func (m *memSampler) stop() (heap, rss uint64) {
	close(m.done)
	m.wg.Wait()
	return m.peak.Load(), vmHWM()
}

func vmHWM() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
