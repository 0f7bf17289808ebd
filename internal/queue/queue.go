// Package queue is a bounded FIFO queue between the request paths and a
// background worker that takes what is queued in batches.
//
// A buffered channel of the same bound allocates its whole buffer when
// it is made and keeps it for the process's life: four workers' queues
// of 4,096 to 10,000 entries held 1.45 MB of a quiet server's 3.4 MB
// live heap (issue 20, docs/benchmarks.md "Memory, third pass"), and a
// burst that cycles through a channel's ring leaves every page of it
// resident. A Queue holds what is queued and no more: its slice grows
// with a burst and is let go once the worker has emptied it.
package queue

import "sync"

// keepCap is the capacity an emptied queue keeps: a trickle of entries
// reuses it, a burst's larger slice goes back to the collector.
const keepCap = 64

// Queue is a FIFO of at most max entries. Any number of goroutines may
// Push; one worker waits on Ready and Takes.
type Queue[T any] struct {
	mu    sync.Mutex
	items []T
	head  int // items[:head] are taken
	max   int
	ready chan struct{}
	space chan struct{}
}

// New makes a queue of at most max entries.
func New[T any](max int) *Queue[T] {
	return &Queue[T]{max: max, ready: make(chan struct{}, 1), space: make(chan struct{}, 1)}
}

// Ready is signalled when entries are queued: after receiving from it
// the worker Takes until Take returns nothing (or waits again, Take
// signals Ready itself when it leaves entries behind).
func (q *Queue[T]) Ready() <-chan struct{} { return q.ready }

// Len is how many entries are queued.
func (q *Queue[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items) - q.head
}

// TryPush queues v, or reports false when the queue is full.
func (q *Queue[T]) TryPush(v T) bool {
	q.mu.Lock()
	n := len(q.items) - q.head
	if n >= q.max {
		q.mu.Unlock()
		return false
	}
	if q.head > 0 && len(q.items) == cap(q.items) {
		// Reuse the taken prefix before append doubles the slice.
		copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items = q.items[:n]
		q.head = 0
	}
	q.items = append(q.items, v)
	room := n+1 < q.max
	q.mu.Unlock()
	signal(q.ready)
	if room {
		// Another pusher waiting for space may go on.
		signal(q.space)
	}
	return true
}

// Push queues v, waiting while the queue is full; it gives up (false)
// when stop is closed.
func (q *Queue[T]) Push(v T, stop <-chan struct{}) bool {
	for !q.TryPush(v) {
		select {
		case <-q.space:
		case <-stop:
			return false
		}
	}
	return true
}

// Take removes and returns up to n entries from the front, nil when
// there are none.
func (q *Queue[T]) Take(n int) []T {
	q.mu.Lock()
	k := min(n, len(q.items)-q.head)
	if k <= 0 {
		q.mu.Unlock()
		return nil
	}
	out := make([]T, k)
	copy(out, q.items[q.head:q.head+k])
	clear(q.items[q.head : q.head+k])
	q.head += k
	left := len(q.items) - q.head
	if left == 0 {
		q.head = 0
		if cap(q.items) > keepCap {
			q.items = nil
		} else {
			q.items = q.items[:0]
		}
	}
	q.mu.Unlock()
	signal(q.space)
	if left > 0 {
		signal(q.ready)
	}
	return out
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
