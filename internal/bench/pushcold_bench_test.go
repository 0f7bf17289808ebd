package bench

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// coldJoinMembers is the size of BenchmarkColdJoin's room.
const coldJoinMembers = 2000

// BenchmarkColdJoin is a join to a room of 2,000 local members right
// after a restart, when no member's push rules are cached (as for a
// room whose members the server has not judged an event for since it
// started), then a message of the joiner's: cpu-ms/join is the
// process's CPU from the join until the message's notification is
// stored, nearly all of it push building the members' rule sets for the
// join and evaluating both events.
func BenchmarkColdJoin(b *testing.B) {
	eachEngine(b, func(b *testing.B, h *harness) {
		ctx := context.Background()
		var room string
		var members, joiners []user
		timed(b, fmt.Sprintf("a room of %d members", coldJoinMembers), func() {
			members = h.registerMany("cold", coldJoinMembers)
			var err error
			if room, err = h.createRoom(ctx, members[0], map[string]any{"preset": "public_chat"}); err != nil {
				b.Fatal(err)
			}
			if err := parallel(len(members)-1, 4, func(i int) error { return h.join(ctx, members[i+1], room) }); err != nil {
				b.Fatal(err)
			}
			joiners = h.registerMany("coldjoiner", 50)
		})
		watcher := members[len(members)-1]
		notified := func() int64 {
			c, _, err := h.s.Push().UnreadCounts(ctx, watcher.ID, room)
			if err != nil {
				b.Fatal(err)
			}
			return c.NotificationCount
		}
		var cpu cpuMeter
		n := 0
		for b.Loop() {
			b.StopTimer()
			if n >= len(joiners) {
				b.Fatal("out of joiners")
			}
			h.s.Restart()
			h.base = h.s.URL
			time.Sleep(200 * time.Millisecond)
			base := notified()
			b.StartTimer()
			cpu.start()
			if err := h.join(ctx, joiners[n], room); err != nil {
				b.Fatal(err)
			}
			if err := h.sendMessage(ctx, joiners[n], room, message("hello")); err != nil {
				b.Fatal(err)
			}
			for deadline := time.Now().Add(time.Minute); notified() <= base; time.Sleep(2 * time.Millisecond) {
				if time.Now().After(deadline) {
					b.Fatal("the message was not evaluated")
				}
			}
			cpu.stop()
			n++
		}
		b.ReportMetric(float64(cpu.perOp(n).Microseconds())/1000, "cpu-ms/join")
	})
}
