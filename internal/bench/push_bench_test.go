package bench

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// pushRoomMembers is the size of BenchmarkPush1000's room.
const pushRoomMembers = 1000

// BenchmarkPush1000 measures push-rule evaluation in a room of 1,000
// local members, every one with the default rules (so each message
// notifies 999 of them), and shows that evaluation stays off the request
// path:
//
//   - evaluate: b.N messages sent back to back, timed until the last
//     member's notifications for all of them are stored; eval-ms/event
//     is that time per event (the worker is the bottleneck), cpu-ms/event
//     the process's CPU per event (server and client).
//   - send-latency: PUT /send latency into the 1,000-member room and
//     into a 2-member room, alternately, while evaluation runs behind.
func BenchmarkPush1000(b *testing.B) {
	eachEngine(b, func(b *testing.B, h *harness) {
		ctx := context.Background()
		var members []user
		var big, small string
		timed(b, fmt.Sprintf("a room of %d members and a room of 2", pushRoomMembers), func() {
			members = h.registerMany("pm", pushRoomMembers)
			var err error
			if big, err = h.createRoom(ctx, members[0], map[string]any{"preset": "public_chat"}); err != nil {
				b.Fatal(err)
			}
			if err := parallel(len(members)-1, 4, func(i int) error { return h.join(ctx, members[i+1], big) }); err != nil {
				b.Fatal(err)
			}
			if small, err = h.createRoom(ctx, members[0], map[string]any{"preset": "public_chat"}); err != nil {
				b.Fatal(err)
			}
			if err := h.join(ctx, members[1], small); err != nil {
				b.Fatal(err)
			}
		})
		sender, watcher := members[0], members[len(members)-1]
		notified := func() int64 {
			c, _, err := h.s.Push().UnreadCounts(ctx, watcher.ID, big)
			if err != nil {
				b.Fatal(err)
			}
			return c.NotificationCount
		}
		drain := func(want int64) {
			deadline := time.Now().Add(5 * time.Minute)
			for notified() < want {
				if time.Now().After(deadline) {
					b.Fatalf("evaluation did not catch up: %d of %d", notified(), want)
				}
				time.Sleep(2 * time.Millisecond)
			}
		}
		body := message("a benchmark message of an ordinary length, about like this")

		b.Run("evaluate", func(b *testing.B) {
			base := notified()
			var cpu cpuMeter
			stop := profile(b)
			b.ResetTimer()
			cpu.start()
			start := time.Now()
			for range b.N {
				if err := h.sendMessage(ctx, sender, big, body); err != nil {
					b.Fatal(err)
				}
			}
			sent := time.Since(start)
			drain(base + int64(b.N))
			elapsed := time.Since(start)
			cpu.stop()
			stop()
			b.ReportMetric(ms(elapsed)/float64(b.N), "eval-ms/event")
			b.ReportMetric(ms(sent)/float64(b.N), "send-ms/event")
			b.ReportMetric(ms(cpu.perOp(b.N)), "cpu-ms/event")
		})

		b.Run("send-latency", func(b *testing.B) {
			base := notified()
			var bigLat, smallLat []time.Duration
			b.ResetTimer()
			for i := range b.N {
				room, lat := big, &bigLat
				if i%2 == 1 {
					room, lat = small, &smallLat
				}
				start := time.Now()
				if err := h.sendMessage(ctx, sender, room, body); err != nil {
					b.Fatal(err)
				}
				*lat = append(*lat, time.Since(start))
			}
			b.StopTimer()
			drain(base + int64(len(bigLat)))
			b.ReportMetric(ms(percentile(bigLat, 50)), "send-1000-p50-ms")
			b.ReportMetric(ms(percentile(bigLat, 99)), "send-1000-p99-ms")
			b.ReportMetric(ms(percentile(smallLat, 50)), "send-2-p50-ms")
			b.ReportMetric(ms(percentile(smallLat, 99)), "send-2-p99-ms")
		})
	})
}
