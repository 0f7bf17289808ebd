package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"
)

// slidingWakeupBody is a one-room window with the last event, enough
// to carry the message a poller waits for.
func slidingWakeupBody() map[string]any {
	return map[string]any{
		"conn_id": "wakeup",
		"lists":   map[string]any{"all": map[string]any{"ranges": [][]int{{0, 0}}, "timeline_limit": 1}},
	}
}

// slidingPoll long-polls sliding sync and answers the new pos and
// whether room's timeline carries an event whose body is marker.
func (h *harness) slidingPoll(ctx context.Context, u user, pos string, timeout time.Duration, room, marker string) (string, bool, error) {
	path := fmt.Sprintf("%s?timeout=%d&pos=%s", slidingPath, timeout.Milliseconds(), pos)
	raw, err := h.doRaw(ctx, "POST", path, u.Token, slidingWakeupBody())
	if err != nil {
		return "", false, err
	}
	var resp struct {
		Pos   string `json:"pos"`
		Rooms map[string]struct {
			Timeline []struct {
				Content struct {
					Body string `json:"body"`
				} `json:"content"`
			} `json:"timeline"`
		} `json:"rooms"`
	}
	if err := json.Unmarshal(raw, &resp); err != nil {
		return "", false, fmt.Errorf("sliding sync: %w", err)
	}
	for _, ev := range resp.Rooms[room].Timeline {
		if ev.Content.Body == marker {
			return resp.Pos, true, nil
		}
	}
	return resp.Pos, false, nil
}

// BenchmarkSlidingSyncWakeup is BenchmarkSyncWakeup with each of the
// wakeupClients members long-polling both /sync and sliding sync at
// once (issue 18: sliding sync's wake-up p99 no worse than /sync's):
// one message wakes all 2×wakeupClients requests, and each kind's
// wake-up times (from the send to the answer carrying the message) are
// reported side by side, under the same load.
func BenchmarkSlidingSyncWakeup(b *testing.B) {
	eachEngine(b, func(b *testing.B, h *harness) {
		ctx := context.Background()
		var sender user
		var clients []user
		var room string
		since := make([]string, wakeupClients)
		pos := make([]string, wakeupClients)
		timed(b, fmt.Sprintf("%d members of a room, synced both ways", wakeupClients+1), func() {
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
				sl, err := h.sliding(ctx, clients[i], "", slidingWakeupBody())
				if err != nil {
					return err
				}
				pos[i] = sl.Pos
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		})

		var syncWake, slidingWake []time.Duration
		iter := 0
		for b.Loop() {
			b.StopTimer()
			iter++
			marker := fmt.Sprintf("wake-up %d", iter)
			syncAt := make([]time.Time, wakeupClients)
			slidingAt := make([]time.Time, wakeupClients)
			errs := make([]error, 2*wakeupClients)
			var wg sync.WaitGroup
			for i := range clients {
				wg.Add(2)
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
								syncAt[i] = at
								return
							}
						}
					}
				}()
				go func() {
					defer wg.Done()
					for {
						next, found, err := h.slidingPoll(ctx, clients[i], pos[i], 30*time.Second, room, marker)
						at := time.Now()
						if err != nil {
							errs[wakeupClients+i] = err
							return
						}
						pos[i] = next
						if found {
							slidingAt[i] = at
							return
						}
						// Woken for something else (the first answer's
						// receipts or counts): poll again.
					}
				}()
			}
			time.Sleep(wakeupSettle)
			b.StartTimer()
			start := time.Now()
			if err := h.sendMessage(ctx, sender, room, message(marker)); err != nil {
				b.Fatal(err)
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					b.Fatalf("poller %d: %v", i, err)
				}
			}
			for i := range clients {
				syncWake = append(syncWake, syncAt[i].Sub(start))
				slidingWake = append(slidingWake, slidingAt[i].Sub(start))
			}
		}
		b.ReportMetric(ms(percentile(syncWake, 50)), "sync-wake-p50-ms")
		b.ReportMetric(ms(percentile(syncWake, 99)), "sync-wake-p99-ms")
		b.ReportMetric(ms(percentile(slidingWake, 50)), "sliding-wake-p50-ms")
		b.ReportMetric(ms(percentile(slidingWake, 99)), "sliding-wake-p99-ms")
	})
}
