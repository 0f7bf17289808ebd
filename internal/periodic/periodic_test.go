package periodic

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestEveryWaitsAnIntervalAndStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		Every(ctx, time.Hour, func() { n.Add(1) })
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	<-done
	if got := n.Load(); got != 0 {
		t.Fatalf("Every called fn %d times before the first interval", got)
	}
}

func TestNowAndEveryCallsAtOnceAndRepeats(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := make(chan struct{}, 10)
	go NowAndEvery(ctx, 5*time.Millisecond, func() { calls <- struct{}{} })
	for i := 0; i < 3; i++ {
		select {
		case <-calls:
		case <-time.After(5 * time.Second):
			t.Fatalf("call %d did not come", i+1)
		}
	}
}

func TestNowAndEveryCallsOnceWhenContextAlreadyEnded(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n := 0
	NowAndEvery(ctx, time.Millisecond, func() { n++ })
	if n != 1 {
		t.Fatalf("fn called %d times, want 1", n)
	}
}
