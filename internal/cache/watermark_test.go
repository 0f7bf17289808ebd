package cache

import (
	"context"
	"testing"
	"time"
)

func TestWatermark(t *testing.T) {
	w := NewWatermark(5)
	moved := w.Moved()
	if w.Raise(5) || w.Raise(3) || w.Get() != 5 {
		t.Fatal("a watermark moved down or sideways")
	}
	select {
	case <-moved:
		t.Fatal("moved closed without a move")
	default:
	}
	done := make(chan bool)
	go func() { done <- w.Wait(context.Background(), 7) }()
	if !w.Raise(6) {
		t.Fatal("no move to 6")
	}
	<-moved
	select {
	case <-done:
		t.Fatal("Wait(7) returned at 6")
	case <-time.After(20 * time.Millisecond):
	}
	w.Raise(8)
	if !<-done || w.Get() != 8 {
		t.Fatal("Wait(7) did not return true at 8")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if w.Wait(ctx, 100) {
		t.Fatal("Wait past the position returned true on a cancelled context")
	}
}
