package push

import (
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/store"
)

// TestPacerWaitsUnderLoadOnly: the worker lets events gather for the
// rest of batchGap only after a batch of several events that stored
// notifications; a lone event, a batch that notified nobody and a full
// batch (a backlog) never make the next one wait.
func TestPacerWaitsUnderLoadOnly(t *testing.T) {
	t0 := time.Unix(1000, 0)
	notified := []evaluated{{}, {notes: []store.PushNotification{{UserID: "@a:x"}}}}
	silent := []evaluated{{}, {}}
	cases := []struct {
		name   string
		events int
		done   []evaluated
		after  time.Duration
		want   time.Duration
	}{
		{"several events with notifications", 2, notified, 5 * time.Millisecond, batchGap - 5*time.Millisecond},
		{"several events, gap over", 2, notified, batchGap + time.Millisecond, 0},
		{"one event", 1, notified[1:], time.Millisecond, 0},
		{"no notifications", 2, silent, time.Millisecond, 0},
		{"a full batch: a backlog", maxBatch, notified, time.Millisecond, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p pacer
			if got := p.wait(t0); got != 0 {
				t.Fatalf("first batch waits %v", got)
			}
			p.took(t0)
			p.stored(c.events, c.done)
			if got := p.wait(t0.Add(c.after)); got != c.want {
				t.Fatalf("next batch waits %v, want %v", got, c.want)
			}
		})
	}
}
