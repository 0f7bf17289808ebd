package rooms

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// txnCountingStore counts the engine's transaction-ID lookups.
type txnCountingStore struct {
	*store.DB
	lookups        atomic.Int64
	retriesWritten atomic.Int64
}

// PersistEvents fails a batch, as the unique index on transaction IDs
// would, when it repeats a transaction: a retry the record failed to
// catch must not reach the writer (other events may build on it).
func (s *txnCountingStore) PersistEvents(ctx context.Context, nes []store.NewEvent) ([]store.Persisted, error) {
	for _, ne := range nes {
		if r := ne.Row; r.TxnID != nil {
			if _, err := s.DB.EventByTxn(ctx, *r.TxnLocalpart, *r.TxnDevice, r.RoomID, *r.TxnScope, *r.TxnID); err == nil {
				s.retriesWritten.Add(1)
			}
		}
	}
	return s.DB.PersistEvents(ctx, nes)
}

func (s *txnCountingStore) EventByTxn(ctx context.Context, localpart, device, roomID, scope, txnID string) (string, error) {
	s.lookups.Add(1)
	return s.DB.EventByTxn(ctx, localpart, device, roomID, scope, txnID)
}

// newTxnEngine is a fresh engine on db, as after a restart.
func newTxnEngine(t *testing.T, db *store.DB) (*Engine, *txnCountingStore) {
	t.Helper()
	st := &txnCountingStore{DB: db}
	return newEngineOn(t, db, st, bus.New()), st
}

// newTxnRoom is an engine on a fresh database of dbURL, counting its
// transaction-ID lookups, and a room alice created in it.
func newTxnRoom(t *testing.T, dbURL string) (e *Engine, st *txnCountingStore, db *store.DB, roomID string) {
	t.Helper()
	_, db, _ = newTestEngine(t, dbURL)
	e, st = newTxnEngine(t, db)
	roomID, err := e.CreateRoom(context.Background(), CreateRequest{Creator: "@alice:a.test"})
	if err != nil {
		t.Fatal(err)
	}
	return e, st, db, roomID
}

func sendTxn(t *testing.T, e *Engine, roomID, device, id string) *Event {
	t.Helper()
	ev, err := e.Send(context.Background(), SendRequest{RoomID: roomID, Sender: "@alice:a.test", Type: "m.room.message",
		Content: map[string]string{"body": id}, Txn: &Txn{Localpart: "alice", Device: device, Scope: "send/m.room.message", ID: id}})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// TestSentTxnsSkipTheStoreForNewIDs: once a device's transactions are
// known, a new transaction ID is sent without looking it up in the store;
// a repeated one still returns the first event.
func TestSentTxnsSkipTheStoreForNewIDs(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		e, st, _, roomID := newTxnRoom(t, dbURL)
		first := sendTxn(t, e, roomID, "D1", "t0")
		before := st.lookups.Load()
		for i := 1; i <= 20; i++ {
			sendTxn(t, e, roomID, "D1", fmt.Sprint("t", i))
		}
		if n := st.lookups.Load() - before; n != 0 {
			t.Fatalf("20 new transaction IDs looked up %d times in the store, want 0", n)
		}
		if again := sendTxn(t, e, roomID, "D1", "t0"); again.EventID() != first.EventID() {
			t.Fatalf("retry sent %s, want the first event %s", again.EventID(), first.EventID())
		}
		// The same ID in another room, or of another device, is another
		// transaction.
		other, err := e.CreateRoom(context.Background(), CreateRequest{Creator: "@alice:a.test"})
		if err != nil {
			t.Fatal(err)
		}
		if ev := sendTxn(t, e, other, "D1", "t0"); ev.EventID() == first.EventID() {
			t.Fatal("t0 in another room answered the first room's event")
		}
		if ev := sendTxn(t, e, roomID, "D2", "t0"); ev.EventID() == first.EventID() {
			t.Fatal("t0 of another device answered D1's event")
		}
	})
}

// TestSentTxnsRetryAfterForgetting: a retry returns the first event after
// a restart (a new engine on the same database) and after the record of
// sent transactions forgot the device, and a new ID sent then is new.
func TestSentTxnsRetryAfterForgetting(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		e, st, db, roomID := newTxnRoom(t, dbURL)
		first := sendTxn(t, e, roomID, "D1", "t1")
		sendTxn(t, e, roomID, "D1", "t2")

		e.txns.mu.Lock()
		e.txns.devices[txnDevice{"alice", "D1"}].used = false
		e.txns.forgetLocked()
		forgot := len(e.txns.devices) == 0 && e.txns.hashes == 0
		e.txns.mu.Unlock()
		if !forgot {
			t.Fatal("the record kept an idle device")
		}
		if again := sendTxn(t, e, roomID, "D1", "t1"); again.EventID() != first.EventID() {
			t.Fatalf("retry after forgetting sent %s, want %s", again.EventID(), first.EventID())
		}

		if n := st.retriesWritten.Load(); n != 0 {
			t.Fatalf("%d retries reached the writer", n)
		}
		restarted, st := newTxnEngine(t, db)
		if again := sendTxn(t, restarted, roomID, "D1", "t1"); again.EventID() != first.EventID() {
			t.Fatalf("retry after a restart sent %s, want %s", again.EventID(), first.EventID())
		}
		before := st.lookups.Load()
		if ev := sendTxn(t, restarted, roomID, "D1", "t3"); ev.EventID() == first.EventID() {
			t.Fatal("a new ID after a restart answered an old event")
		}
		if n := st.lookups.Load() - before; n != 0 {
			t.Fatalf("a new ID of a device read after the restart looked up %d times, want 0", n)
		}
		if n := st.retriesWritten.Load(); n != 0 {
			t.Fatalf("%d retries reached the writer after the restart", n)
		}
	})
}

// TestSentTxnsTrimIdle: a quiet server forgets the transactions of the
// devices that stopped sending (a burst's hashes would otherwise stay for
// the process's life), keeps those still sending, and a retry after the
// device was forgotten still returns the first event.
func TestSentTxnsTrimIdle(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		e, st, _, roomID := newTxnRoom(t, dbURL)
		first := sendTxn(t, e, roomID, "D1", "t1")
		sendTxn(t, e, roomID, "D1", "t2")
		sendTxn(t, e, roomID, "D2", "t1")
		devices := func() (int, int) {
			e.txns.mu.Lock()
			defer e.txns.mu.Unlock()
			return len(e.txns.devices), e.txns.hashes
		}
		// The first check finds both just used; D1 is idle from then on.
		for i := range txnIdleTrims {
			e.txns.TrimIdle()
			sendTxn(t, e, roomID, "D2", fmt.Sprint("u", i))
		}
		if n, _ := devices(); n != 2 {
			t.Fatalf("%d devices recorded after %d quiet checks, want 2: D1 was forgotten too soon", n, txnIdleTrims)
		}
		if got := e.txns.TrimIdle(); got != 1 {
			t.Fatalf("TrimIdle forgot %d devices, want 1 (D1, idle for %d checks)", got, txnIdleTrims)
		}
		if n, hashes := devices(); n != 1 || hashes != txnIdleTrims+1 {
			t.Fatalf("after the trim: %d devices, %d hashes; want D2's 1 and %d", n, hashes, txnIdleTrims+1)
		}
		if again := sendTxn(t, e, roomID, "D1", "t1"); again.EventID() != first.EventID() {
			t.Fatalf("retry after the trim sent %s, want %s", again.EventID(), first.EventID())
		}
		before := st.lookups.Load()
		sendTxn(t, e, roomID, "D1", "t3")
		if n := st.lookups.Load() - before; n != 0 {
			t.Fatalf("a new ID of a device read back after the trim looked up %d times, want 0", n)
		}
		if n := st.retriesWritten.Load(); n != 0 {
			t.Fatalf("%d retries reached the writer", n)
		}
	})
}

// TestSentTxnsBounded: a device past the per-device bound is asked of the
// store on every send, and its retries still return the first event.
func TestSentTxnsBounded(t *testing.T) {
	s := newSentTxns()
	txn := func(i int) *Txn { return &Txn{Localpart: "a", Device: "D", Scope: "send/m", ID: fmt.Sprint(i)} }
	for i := 0; i <= txnDeviceLimit; i++ {
		s.begin("!r", txn(i))
		s.end(txn(i))
	}
	d := s.devices[txnDevice{"a", "D"}]
	if !d.tooMany || d.sent != nil || s.hashes != 0 {
		t.Fatalf("past %d transactions: tooMany %v, %d kept, %d counted", txnDeviceLimit, d.tooMany, len(d.sent), s.hashes)
	}
	if s.surelyNew(context.Background(), nil, "!r", txn(-1)) {
		t.Fatal("a device past the bound answered without the store")
	}
	// Many devices: the record stays within its bound of hashes.
	for dev := 0; dev < 2*txnTotalLimit/txnLoadLimit; dev++ {
		for i := 0; i < txnLoadLimit; i++ {
			tx := &Txn{Localpart: "a", Device: fmt.Sprint("d", dev), Scope: "send/m", ID: fmt.Sprint(i)}
			s.begin("!r", tx)
			s.end(tx)
		}
	}
	if s.hashes > txnTotalLimit {
		t.Fatalf("%d hashes kept, bound %d", s.hashes, txnTotalLimit)
	}
}

// TestSentTxnsTrimIdleGivesBackTheMap: forgetting the devices a burst
// recorded gives back the map that held them too (maps.Clone, which the
// trim used, keeps the source's buckets).
func TestSentTxnsTrimIdleGivesBackTheMap(t *testing.T) {
	s := newSentTxns()
	base := liveHeap()
	s.mu.Lock()
	for i := range txnDeviceCount - 1 {
		s.addLocked(txnDevice{fmt.Sprint("user", i), "DEVICE"})
	}
	s.mu.Unlock()
	full := liveHeap()
	for range txnIdleTrims {
		s.TrimIdle()
	}
	if n := len(s.devices); n != 0 {
		t.Fatalf("%d devices left after %d quiet checks, want 0", n, txnIdleTrims)
	}
	emptied := liveHeap()
	t.Logf("heap %d KiB empty, %d full, %d trimmed", base>>10, full>>10, emptied>>10)
	// The devices' own records go whatever the map; the map's buckets
	// (about a quarter of what the devices took) only with a new map.
	if emptied > base+(full-base)/10 {
		t.Errorf("trimmed record holds %d KiB of the %d KiB it took full", (emptied-base)>>10, (full-base)>>10)
	}
	runtime.KeepAlive(s)
}
