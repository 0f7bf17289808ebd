package rooms

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/myelin-chat/myelin/internal/store"
)

// errEarlierFailed fails the writes queued after a failed one of the same
// room: they were built on it (it is among their prev_events).
var errEarlierFailed = errors.New("rooms: an earlier event of the room failed to persist")

// writer is group commit: every event of every room is stored through
// one queue, and whatever is queued when the database is free goes in one
// transaction. A commit (the WAL write, or a round trip on PostgreSQL)
// costs more than storing one message, and with one SQLite writer
// connection events could otherwise only be stored one commit at a time.
//
// A room queues its events in order under its lock, and a drain stores
// the queue in order, so a room's writes are applied as its head moved.
type writer struct {
	store Store
	// txns hears of every write with a transaction ID (sentTxns).
	txns *sentTxns

	mu    sync.Mutex
	queue []*pendingWrite
	// busy: a drain runs. The first write queued on an idle writer sets
	// it and either kicks run (while the server runs it) or starts a
	// goroutine of its own; the drain clears it when it finds the queue
	// empty. Only the one who set busy drains, so drains never overlap.
	busy bool
	// running: run is draining for the writer; kick wakes it (at most one
	// kick is outstanding: one per idle-to-busy change).
	running bool
	kick    chan struct{}
}

// run drains the queue whenever writes are queued, until ctx ends; then
// it stores what was kicked to it and returns. A write queued while run
// is not running (before the server starts it, after it stopped, in
// tests of parts) gets a drain goroutine of its own, which ends with the
// queue: Shutdown waits for those with flush.
func (w *writer) run(ctx context.Context) error {
	w.mu.Lock()
	if w.running {
		w.mu.Unlock()
		return errors.New("rooms: group commit is already running")
	}
	w.running = true
	w.mu.Unlock()
	for {
		select {
		case <-w.kick:
			w.drain()
		case <-ctx.Done():
			w.mu.Lock()
			w.running = false
			w.mu.Unlock()
			// A kick sent before running was cleared is still ours.
			select {
			case <-w.kick:
				w.drain()
			default:
			}
			return nil
		}
	}
}

// pendingWrite is an event queued for storing.
type pendingWrite struct {
	ne store.NewEvent
	// after is the room's previous write if it was still unconfirmed when
	// this one was queued; this one fails if that one does. The writer
	// clears it when done.
	after *pendingWrite
	done  chan struct{}
	// txn is the write's transaction, nil if none.
	txn *Txn
	// res and err are set before done is closed.
	res store.Persisted
	err error
}

// submit queues an event; after is the room's last queued write (nil
// when none is unconfirmed). It does not wait: see wait.
func (w *writer) submit(ne store.NewEvent, after *pendingWrite) *pendingWrite {
	p := &pendingWrite{ne: ne, after: after, done: make(chan struct{})}
	if r := &ne.Row; r.TxnID != nil && r.TxnLocalpart != nil && r.TxnDevice != nil && r.TxnScope != nil {
		p.txn = &Txn{Localpart: *r.TxnLocalpart, Device: *r.TxnDevice, Scope: *r.TxnScope, ID: *r.TxnID}
		w.txns.begin(r.RoomID, p.txn)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.queue = append(w.queue, p)
	if !w.busy {
		w.busy = true
		if w.running {
			w.kick <- struct{}{} // never blocks: the only kick outstanding
		} else {
			go w.drain()
		}
	}
	return p
}

// flush returns once no drain runs: whatever was queued is committed or
// failed. Shutdown calls it before closing the database.
func (w *writer) flush() {
	for {
		w.mu.Lock()
		busy := w.busy
		w.mu.Unlock()
		if !busy {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// wait returns the write's outcome once it is committed or failed. The
// write goes ahead whatever the caller's context does: other events may
// already build on it.
func (p *pendingWrite) wait() (store.Persisted, error) {
	<-p.done
	return p.res, p.err
}

// settled reports, without waiting, whether the write has finished and
// with which error.
func (p *pendingWrite) settled() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// drain stores queued events, a batch per transaction, until none are left.
func (w *writer) drain() {
	for {
		w.mu.Lock()
		batch := w.queue
		w.queue = nil
		if len(batch) == 0 {
			w.busy = false
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		w.persist(batch)
	}
}

// persist stores one batch. A failed transaction is retried event by
// event, so that one bad event (a transaction ID racing its retry into
// the unique index) fails only itself and the events built on it.
func (w *writer) persist(batch []*pendingWrite) {
	// No request owns the batch; a request that gave up must not cancel
	// the others' writes.
	ctx := context.Background()
	ready := make([]*pendingWrite, 0, len(batch))
	nes := make([]store.NewEvent, 0, len(batch))
	for _, p := range batch {
		if p.after != nil && p.after.err != nil {
			p.err = errEarlierFailed
			continue
		}
		ready = append(ready, p)
		nes = append(nes, p.ne)
	}
	if len(ready) > 0 {
		var res []store.Persisted
		err := safely(func() (err error) {
			res, err = w.store.PersistEvents(ctx, nes)
			return err
		})
		switch {
		case err == nil:
			for i, p := range ready {
				p.res = res[i]
			}
		case len(ready) == 1:
			ready[0].err = err
		default:
			w.persistEach(ctx, ready)
		}
	}
	for _, p := range batch {
		// Dropped once used: in a room that never goes idle each write
		// would otherwise keep every earlier one alive.
		p.after = nil
		if p.txn != nil {
			w.txns.end(p.txn)
		}
		close(p.done)
	}
}

// persistEach stores events one transaction each, in order, skipping
// those built on one that failed.
func (w *writer) persistEach(ctx context.Context, ps []*pendingWrite) {
	for _, p := range ps {
		if p.after != nil && p.after.err != nil {
			p.err = errEarlierFailed
			continue
		}
		p.err = safely(func() (err error) {
			p.res.NID, p.res.StateAfter, err = w.store.PersistEvent(ctx, p.ne)
			return err
		})
	}
}

// safely turns a panic of the store into an error: the drain runs
// outside any request, where a panic would end the process rather than
// one request, and leave the writer busy for good.
func safely(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("rooms: persisting events: panic: %v", r)
		}
	}()
	return fn()
}
