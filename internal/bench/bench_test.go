package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkSendThroughput measures how many m.room.message events per
// second issue 20's 8 concurrent clients get through PUT /send: all in
// one room of 50 members (every send queues on that room's lock, and
// each event has 49 recipients to count and evaluate push rules for),
// and each in a room of their own (sends only meet in the database and
// the stream). cpu-us/event is the whole process's, load generator
// included; BenchmarkSendThroughputProcess tells the server's apart.
func BenchmarkSendThroughput(b *testing.B) {
	eachEngine(b, func(b *testing.B, h *harness) {
		senders, shared, own := thruSetup(b, h)
		b.Run("shared-room", func(b *testing.B) {
			sendLoad(b, h, senders, func(int) string { return shared })
		})
		b.Run("room-per-user", func(b *testing.B) {
			sendLoad(b, h, senders, func(i int) string { return own[i] })
		})
	})
}

// sendLoad has every user send messages to their room, as fast as the
// server answers, until b.N events are sent in all.
func sendLoad(b *testing.B, h *harness, users []user, roomOf func(i int) string) {
	ctx := context.Background()
	body := message("a benchmark message of an ordinary length, about like this")
	var sent atomic.Int64
	var cpu cpuMeter
	var mu sync.Mutex
	var times []time.Duration
	stop := profile(b)
	b.ResetTimer()
	cpu.start()
	err := parallel(len(users), len(users), func(i int) error {
		var mine []time.Duration
		defer func() { mu.Lock(); times = append(times, mine...); mu.Unlock() }()
		u, room := users[i], roomOf(i)
		for sent.Add(1) <= int64(b.N) {
			t := time.Now()
			if err := h.sendMessage(ctx, u, room, body); err != nil {
				return err
			}
			mine = append(mine, time.Since(t))
		}
		return nil
	})
	b.StopTimer()
	cpu.stop()
	stop()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(cpu.perOp(b.N).Microseconds()), "cpu-us/event")
	b.ReportMetric(ms(percentile(times, 99)), "send-p99-ms")
}

// wakeupClients is the number of long-polling clients of BenchmarkSyncWakeup.
const wakeupClients = 100

// wakeupSettle is how long the clients get to park their long-polls
// before the send; it is outside the timed part.
const wakeupSettle = 250 * time.Millisecond

// BenchmarkSyncWakeup has 100 clients, all members of one room,
// long-poll /sync while one more member sends a message, and measures
// how long after the send request starts each /sync returns with the
// message (wake-p50-ms, wake-p99-ms; woken-after-send-p99-ms counts from
// the send's response instead). ns/op is the time until the last one.
func BenchmarkSyncWakeup(b *testing.B) {
	eachEngine(b, func(b *testing.B, h *harness) {
		ctx := context.Background()
		var sender user
		var clients []user
		var room string
		since := make([]string, wakeupClients)
		timed(b, fmt.Sprintf("%d members of a room, synced", wakeupClients+1), func() {
			var err error
			if sender, err = h.register(ctx, "sender"); err != nil {
				b.Fatal(err)
			}
			if room, err = h.createRoom(ctx, sender, map[string]any{"preset": "public_chat"}); err != nil {
				b.Fatal(err)
			}
			clients = h.registerMany("poller", wakeupClients)
			err = parallel(wakeupClients, 8, func(i int) error {
				if err := h.join(ctx, clients[i], room); err != nil {
					return err
				}
				resp, err := h.sync(ctx, clients[i], "", 0)
				if err != nil {
					return err
				}
				since[i] = resp.NextBatch
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		})

		var fromStart, fromResponse []time.Duration
		var cpu cpuMeter
		iter := 0
		stop := profile(b)
		for b.Loop() {
			b.StopTimer()
			iter++
			marker := fmt.Sprintf("wake-up %d", iter)
			returned := make([]time.Time, wakeupClients)
			errs := make([]error, wakeupClients)
			var wg sync.WaitGroup
			for i := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						raw, err := h.syncRaw(ctx, clients[i], since[i], 30*time.Second)
						at := time.Now()
						if err != nil {
							errs[i] = err
							return
						}
						resp, err := decodeSync(raw)
						if err != nil {
							errs[i] = err
							return
						}
						since[i] = resp.NextBatch
						for _, ev := range resp.Rooms.Join[room].Timeline.Events {
							if ev.Content.Body == marker {
								returned[i] = at
								return
							}
						}
						// Woken for something else (nothing else happens here,
						// but a benchmark must not hang on it): poll again.
					}
				}()
			}
			time.Sleep(wakeupSettle)
			b.StartTimer()
			cpu.start()
			start := time.Now()
			if err := h.sendMessage(ctx, sender, room, message(marker)); err != nil {
				b.Fatal(err)
			}
			sent := time.Now()
			wg.Wait()
			cpu.stop()
			for i, err := range errs {
				if err != nil {
					b.Fatalf("client %d: %v", i, err)
				}
			}
			for _, at := range returned {
				fromStart = append(fromStart, at.Sub(start))
				fromResponse = append(fromResponse, max(0, at.Sub(sent)))
			}
		}
		stop()
		b.ReportMetric(ms(percentile(fromStart, 50)), "wake-p50-ms")
		b.ReportMetric(ms(percentile(fromStart, 99)), "wake-p99-ms")
		b.ReportMetric(ms(percentile(fromResponse, 99)), "woken-after-send-p99-ms")
		b.ReportMetric(ms(cpu.perOp(iter*wakeupClients)), "cpu-ms/wakeup")
	})
}

// Shape of BenchmarkInitialSync100Rooms's data.
const (
	syncRooms         = 100
	messagesPerRoom   = 20
	extraStatePerRoom = 3
)

// BenchmarkInitialSync100Rooms measures an initial /sync (no filter, so
// full state and the last 10 events of each room) of a user in 100
// rooms, each with a second member, 20 messages and a few state events
// besides the ones createRoom makes. The server's caches are warm.
func BenchmarkInitialSync100Rooms(b *testing.B) {
	eachEngine(b, func(b *testing.B, h *harness) {
		ctx := context.Background()
		var alice, bob user
		timed(b, fmt.Sprintf("%d rooms with history", syncRooms), func() {
			users := h.registerMany("u", 2)
			alice, bob = users[0], users[1]
			err := parallel(syncRooms, 8, func(i int) error {
				// A distinct creation_content keeps the create events, and so
				// the v12 room IDs (their hashes), apart when two of alice's
				// rooms are created in the same millisecond.
				room, err := h.createRoom(ctx, alice, map[string]any{
					"preset": "public_chat", "name": fmt.Sprintf("Room %d", i), "topic": "Benchmarks and their discontents",
					"creation_content": map[string]any{"org.myelin.bench.room": i},
				})
				if err != nil {
					return err
				}
				if err := h.join(ctx, bob, room); err != nil {
					return err
				}
				for j := range extraStatePerRoom {
					if err := h.putState(ctx, alice, room, "org.myelin.bench", fmt.Sprint(j), map[string]any{"n": j}); err != nil {
						return err
					}
				}
				for j := range messagesPerRoom {
					from := alice
					if j%2 == 1 {
						from = bob
					}
					if err := h.sendMessage(ctx, from, room, message(fmt.Sprintf("message %d in room %d", j, i))); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		})

		var size, n int
		var cpu cpuMeter
		stop := profile(b)
		for b.Loop() {
			cpu.start()
			raw, err := h.syncRaw(ctx, alice, "", 0)
			cpu.stop()
			n++
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			resp, err := decodeSync(raw)
			if err != nil {
				b.Fatal(err)
			}
			if len(resp.Rooms.Join) != syncRooms {
				b.Fatalf("initial sync has %d joined rooms, want %d", len(resp.Rooms.Join), syncRooms)
			}
			for id, r := range resp.Rooms.Join {
				if len(r.Timeline.Events) == 0 || len(r.State.Events)+len(r.Timeline.Events) < 10 {
					b.Fatalf("room %s: %d state and %d timeline events", id, len(r.State.Events), len(r.Timeline.Events))
				}
			}
			size = len(raw)
			b.StartTimer()
		}
		stop()
		b.ReportMetric(float64(size)/1024, "KiB/resp")
		b.ReportMetric(ms(cpu.perOp(n)), "cpu-ms/op")
	})
}

// joinRoomMembers is the size of BenchmarkJoin2000's room.
const joinRoomMembers = 2000

// BenchmarkJoin2000 measures POST /join of one more user into a public
// room that already has 2,000 members (each op adds one; ms/op is the
// mean, join-p50-ms and join-p99-ms the distribution).
func BenchmarkJoin2000(b *testing.B) {
	eachEngine(b, func(b *testing.B, h *harness) {
		ctx := context.Background()
		var room string
		var joiners []user
		timed(b, fmt.Sprintf("a room of %d members", joinRoomMembers), func() {
			owner, err := h.register(ctx, "owner")
			if err != nil {
				b.Fatal(err)
			}
			if room, err = h.createRoom(ctx, owner, map[string]any{"preset": "public_chat"}); err != nil {
				b.Fatal(err)
			}
			members := h.registerMany("member", joinRoomMembers-1)
			if err := parallel(len(members), 4, func(i int) error { return h.join(ctx, members[i], room) }); err != nil {
				b.Fatal(err)
			}
			joiners = h.registerMany("joiner", 300)
		})

		var lat []time.Duration
		var cpu cpuMeter
		stop := profile(b)
		for b.Loop() {
			var u user
			if i := len(lat); i < len(joiners) {
				u = joiners[i]
			} else {
				b.StopTimer()
				var err error
				if u, err = h.register(ctx, fmt.Sprintf("joiner%d", i)); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			cpu.start()
			start := time.Now()
			if err := h.join(ctx, u, room); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
			cpu.stop()
		}
		stop()
		b.ReportMetric(ms(cpu.perOp(len(lat))), "cpu-ms/op")
		b.ReportMetric(ms(percentile(lat, 50)), "join-p50-ms")
		b.ReportMetric(ms(percentile(lat, 99)), "join-p99-ms")
	})
}
