package rooms

import (
	"context"
	"sync"

	"github.com/myelin-chat/myelin/internal/cache"
)

// StreamGen hands out event stream positions. Events of different rooms
// persist concurrently, so positions can commit out of order; Current is
// the highest position below which every position has finished, which is
// what readers may safely read up to.
type StreamGen struct {
	mu       sync.Mutex
	next     int64
	inflight map[int64]bool
	// stored is the highest position actually persisted. Current never
	// passes it, so that a token handed out always names a stored position
	// and a restart (which resumes after the highest stored one) cannot
	// reuse a position a client already holds.
	stored int64
	// current is what Current reports.
	current *cache.Watermark
}

// NewStreamGen starts after the highest stored position.
func NewStreamGen(max int64) *StreamGen {
	return &StreamGen{next: max + 1, stored: max, inflight: map[int64]bool{}, current: cache.NewWatermark(max)}
}

// Next reserves a position; the caller must call Done with it.
func (g *StreamGen) Next() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	p := g.next
	g.next++
	g.inflight[p] = true
	return p
}

// Done marks a position persisted.
func (g *StreamGen) Done(p int64) { g.finish(p, true) }

// Abandon marks a position whose event was not persisted.
func (g *StreamGen) Abandon(p int64) { g.finish(p, false) }

func (g *StreamGen) finish(p int64, stored bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.inflight, p)
	if stored && p > g.stored {
		g.stored = p
	}
	cur := min(g.next-1, g.stored)
	for q := range g.inflight {
		if q-1 < cur {
			cur = q - 1
		}
	}
	// Raised under g.mu, so that positions finishing concurrently raise
	// it in order.
	g.current.Raise(cur)
}

// Current is the position readers may read up to.
func (g *StreamGen) Current() int64 { return g.current.Get() }

// Advanced returns a channel closed the next time Current moves.
func (g *StreamGen) Advanced() <-chan struct{} { return g.current.Moved() }

// WaitReadable returns once p is at or below Current, or ctx ends (then
// false). Positions finish out of order (a batch's events, and the other
// users of the stream: push counts, receipts, presence), so a sender
// that has finished p waits here before answering its client, whose
// next read must see what it sent.
func (g *StreamGen) WaitReadable(ctx context.Context, p int64) bool {
	return g.current.Wait(ctx, p)
}
