package rooms

import (
	"context"
	"sync"
)

// outbox holds a room's notifications from the moment its lock holder
// stores an event until the bus has told every listener, so that they
// are told after the room's lock is released (see roomHead.mu) and still
// in the order the room's lock holders stored them.
//
// Whoever unlocks with notifications of its own publishes everything
// queued up to them unless another unlocker is already publishing; it
// then waits, outside the lock, for that one to get past its own. A
// listener that blocks (a full queue) therefore holds up the senders of
// the room, as it always did, but never the room's lock: the listener's
// worker can take it to catch up and free its queue.
type outbox struct {
	mu         sync.Mutex
	done       *sync.Cond // signalled when published moves or publishing ends
	queue      []Notification
	queued     uint64 // notifications ever queued
	published  uint64 // of those, the ones every listener heard of
	publishing bool
}

// add queues n and returns its sequence number, what flush waits for.
func (o *outbox) add(n Notification) uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.queue = append(o.queue, n)
	o.queued++
	return o.queued
}

// flush returns once the notification numbered upto and all before it
// were published. Call it without the room's lock.
func (o *outbox) flush(publish func(Notification), upto uint64) {
	o.mu.Lock()
	if o.done == nil {
		o.done = sync.NewCond(&o.mu)
	}
	for o.published < upto {
		if o.publishing {
			o.done.Wait()
			continue
		}
		batch := o.queue
		o.queue = nil
		o.publishing = true
		o.mu.Unlock()
		o.publishAll(publish, batch)
		o.mu.Lock()
		o.publishing = false
		o.published += uint64(len(batch))
		o.done.Broadcast()
	}
	o.mu.Unlock()
}

// publishAll publishes batch in order. A listener that panics (a bus
// that cannot serialise a change) has its panic go on to the caller, as
// when the engine published directly, but the rest of the batch counts
// as published, so that the room's other senders do not wait for it.
func (o *outbox) publishAll(publish func(Notification), batch []Notification) {
	defer func() {
		if r := recover(); r != nil {
			o.mu.Lock()
			o.publishing = false
			o.published += uint64(len(batch))
			o.done.Broadcast()
			o.mu.Unlock()
			panic(r)
		}
	}()
	for _, n := range batch {
		publish(n)
	}
}

// notify queues a notification of the room whose lock the caller holds;
// unlockRoom publishes it once the lock is released.
func (e *Engine) notify(h *roomHead, n Notification) {
	h.unpublished = h.out.add(n)
}

// publishNotification is how the outbox tells the bus.
func (e *Engine) publishNotification(n Notification) {
	e.bus.Publish(context.Background(), n)
}
