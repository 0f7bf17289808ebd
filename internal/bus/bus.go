// Package bus carries changes from the service that makes them to the
// services that care: a room's typing list, a receipt, a user's
// presence, account data, notification counts, device lists and
// to-device messages. Services get the bus when they are built and
// subscribe there; none sets another's callback fields afterwards.
//
// A change is a plain data value (strings, numbers, no pointers into
// the publisher's memory) that could be serialised, and a listener
// returns nothing to the publisher, so that a NATS JetStream
// implementation can replace InProcess when Myelin runs as several
// processes. The change types live in the package that owns the
// concept (typing.Changed, receipts.Stored, ...); this package knows
// only topics.
package bus

import (
	"context"
	"sync"
	"sync/atomic"
)

// Change is one change a listener may hear of. Topic names its kind,
// the subject a NATS implementation would publish it under.
type Change interface {
	Topic() string
}

// Listener hears of a change. It must not assume it runs in the
// publisher's process: what it needs travels in the change.
type Listener func(ctx context.Context, c Change)

// Bus publishes changes to the listeners subscribed to their topic.
type Bus interface {
	Publish(ctx context.Context, c Change)
	// Subscribe registers a listener, under a name for diagnostics,
	// for the given topics. Subscribe while services are built,
	// before anything publishes.
	Subscribe(name string, l Listener, topics ...string)
}

// InProcess is the Bus of a single process: Publish calls the topic's
// listeners synchronously, in the order they subscribed, on the
// publisher's goroutine (the /sync wake-up path adds no goroutine hop).
// A listener with slow work hands it to its own worker.
type InProcess struct {
	mu   sync.Mutex // serialises Subscribe
	subs atomic.Pointer[map[string][]subscriber]
}

type subscriber struct {
	name string
	l    Listener
}

// New returns an empty in-process bus.
func New() *InProcess {
	b := &InProcess{}
	b.subs.Store(&map[string][]subscriber{})
	return b
}

// Subscribe implements Bus. It copies the table so that Publish reads
// it without a lock.
func (b *InProcess) Subscribe(name string, l Listener, topics ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := *b.subs.Load()
	next := make(map[string][]subscriber, len(old)+len(topics))
	for t, s := range old {
		next[t] = s
	}
	for _, t := range topics {
		next[t] = append(append([]subscriber(nil), next[t]...), subscriber{name, l})
	}
	b.subs.Store(&next)
}

// Publish implements Bus.
func (b *InProcess) Publish(ctx context.Context, c Change) {
	for _, s := range (*b.subs.Load())[c.Topic()] {
		s.l(ctx, c)
	}
}

// Listeners lists the names subscribed to a topic, in order: what a
// test of the wiring asserts.
func (b *InProcess) Listeners(topic string) []string {
	var names []string
	for _, s := range (*b.subs.Load())[topic] {
		names = append(names, s.name)
	}
	return names
}
