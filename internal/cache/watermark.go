package cache

import (
	"context"
	"sync"
)

// Watermark is a stream position that only moves up, with a channel
// closed each time it moves, so that goroutines can wait for it to reach
// a position without polling.
type Watermark struct {
	mu    sync.Mutex
	pos   int64
	moved chan struct{}
}

// NewWatermark starts at pos.
func NewWatermark(pos int64) *Watermark {
	return &Watermark{pos: pos, moved: make(chan struct{})}
}

// Get is the current position.
func (w *Watermark) Get() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pos
}

// Moved returns a channel closed the next time the position moves. Take
// it before reading the position, so that no move in between is missed.
func (w *Watermark) Moved() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.moved
}

// Raise moves the position up to pos; it reports whether it moved.
func (w *Watermark) Raise(pos int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if pos <= w.pos {
		return false
	}
	w.pos = pos
	close(w.moved)
	w.moved = make(chan struct{})
	return true
}

// Wait returns once the position is at least pos (true), or ctx ends
// (false).
func (w *Watermark) Wait(ctx context.Context, pos int64) bool {
	for {
		moved := w.Moved()
		if w.Get() >= pos {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-moved:
		}
	}
}
