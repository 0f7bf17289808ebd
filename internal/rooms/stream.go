package rooms

import (
	"context"
	"sync"

	"github.com/myelin-chat/myelin/internal/bus"
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
	// bus hears of every move of Current (StreamAdvanced); nil: nobody.
	bus bus.Bus
}

// NewStreamGen starts after the highest stored position and publishes
// StreamAdvanced on b (which may be nil) whenever Current moves.
func NewStreamGen(max int64, b bus.Bus) *StreamGen {
	return &StreamGen{next: max + 1, stored: max, inflight: map[int64]bool{}, current: cache.NewWatermark(max), bus: b}
}

// StreamAdvanced is published when the stream's readable position
// (Current) moves: what was written up to Position may now be read.
// Workers that follow the stream (the sync notifier, the federation
// sender, the search indexer) wait for it rather than poll.
type StreamAdvanced struct {
	Position int64 `json:"position"`
}

// TopicAdvanced is the topic of StreamAdvanced.
const TopicAdvanced = "rooms.advanced"

// Topic implements bus.Change.
func (StreamAdvanced) Topic() string { return TopicAdvanced }

// Advances subscribes a worker, under name, to StreamAdvanced on b. The
// channel it returns holds a value whenever the position moved since it
// was last read, so that a worker which takes it before catching up
// with the stream misses no move (many moves while it works make one).
func Advances(b bus.Bus, name string) <-chan struct{} {
	ch := make(chan struct{}, 1)
	b.Subscribe(name, func(context.Context, bus.Change) {
		select {
		case ch <- struct{}{}:
		default:
		}
	}, TopicAdvanced)
	return ch
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

// Skip leaves n positions unused and returns the first: they are never
// in flight, so readers pass them at once (a hole in history keeps them
// for the events that fill it later, see historygaps.go).
func (g *StreamGen) Skip(n int64) int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	p := g.next
	g.next += n
	return p
}

// Done marks a position persisted.
func (g *StreamGen) Done(p int64) { g.finish(p, true) }

// Abandon marks a position whose event was not persisted.
func (g *StreamGen) Abandon(p int64) { g.finish(p, false) }

func (g *StreamGen) finish(p int64, stored bool) {
	if cur, moved := g.raise(p, stored); moved && g.bus != nil {
		// Outside g.mu: listeners may read the stream. Two finishers may
		// publish out of order; listeners read Current, never Position
		// alone.
		g.bus.Publish(context.Background(), StreamAdvanced{Position: cur})
	}
}

func (g *StreamGen) raise(p int64, stored bool) (int64, bool) {
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
	return cur, g.current.Raise(cur)
}

// Current is the position readers may read up to.
func (g *StreamGen) Current() int64 { return g.current.Get() }

// WaitReadable returns once p is at or below Current, or ctx ends (then
// false). Positions finish out of order (a batch's events, and the other
// users of the stream: push counts, receipts, presence), so a sender
// that has finished p waits here before answering its client, whose
// next read must see what it sent.
func (g *StreamGen) WaitReadable(ctx context.Context, p int64) bool {
	return g.current.Wait(ctx, p)
}
