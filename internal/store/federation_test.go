package store_test

import (
	"context"
	"maps"
	"slices"
	"testing"

	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// TestFederationQueue drives the sender's queue the way the sender does:
// events queued with the stream position in one step, read back in queue
// order, delivered, and a backlog cut to the newest event per room when a
// destination catches up after an outage.
func TestFederationQueue(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db := open(t, url)
		if _, found, err := db.SenderPosition(ctx); err != nil || found {
			t.Fatalf("position before the first start: found=%v err=%v", found, err)
		}
		var q []store.QueuedPDU
		for i := range 60 {
			room := "!a:hs1.test"
			if i%3 == 0 {
				room = "!b:hs1.test"
			}
			q = append(q, store.QueuedPDU{Destination: "hs2.test", RoomID: room, EventNID: int64(100 + i)})
		}
		q = append(q, store.QueuedPDU{Destination: "hs3.test", RoomID: "!a:hs1.test", EventNID: 7})
		if err := db.QueuePDUs(ctx, q, 42); err != nil {
			t.Fatal(err)
		}
		if pos, found, err := db.SenderPosition(ctx); err != nil || !found || pos != 42 {
			t.Fatalf("position %d found=%v err=%v, want 42", pos, found, err)
		}
		if err := db.QueueEDU(ctx, []string{"hs2.test", "hs4.test"}, "m.typing", `{"typing":true}`); err != nil {
			t.Fatal(err)
		}
		dests, err := db.QueuedDestinations(ctx)
		slices.Sort(dests)
		if err != nil || !slices.Equal(dests, []string{"hs2.test", "hs3.test", "hs4.test"}) {
			t.Fatalf("queued destinations %v %v", dests, err)
		}
		counts, err := db.QueueCounts(ctx)
		want := map[string]store.QueueCount{"hs2.test": {PDUs: 60, EDUs: 1}, "hs3.test": {PDUs: 1}, "hs4.test": {EDUs: 1}}
		if err != nil || !maps.Equal(counts, want) {
			t.Fatalf("queue counts %v %v, want %v", counts, err, want)
		}
		pending, err := db.PendingPDUs(ctx, "hs2.test", 50)
		if err != nil || len(pending) != 50 || pending[0].EventNID != 100 || pending[49].EventNID != 149 {
			t.Fatalf("pending: %d %v", len(pending), err)
		}
		if n, err := db.CountPendingPDUs(ctx, "hs2.test"); err != nil || n != 60 {
			t.Fatalf("count %d %v", n, err)
		}

		// Catch-up keeps the newest event of each room, of this destination only.
		if err := db.KeepLatestPDUs(ctx, "hs2.test"); err != nil {
			t.Fatal(err)
		}
		pending, err = db.PendingPDUs(ctx, "hs2.test", 50)
		var nids []int64
		for _, p := range pending {
			nids = append(nids, p.EventNID)
		}
		if err != nil || !slices.Equal(nids, []int64{157, 159}) {
			t.Fatalf("after catch-up: %v %v, want [157 159]", nids, err)
		}
		if n, _ := db.CountPendingPDUs(ctx, "hs3.test"); n != 1 {
			t.Fatalf("another destination's queue changed: %d", n)
		}

		// Delivery removes what was sent, up to the IDs given.
		edus, err := db.PendingEDUs(ctx, "hs2.test", 100)
		if err != nil || len(edus) != 1 || edus[0].Type != "m.typing" || edus[0].Content != `{"typing":true}` {
			t.Fatalf("edus %+v %v", edus, err)
		}
		if err := db.DeleteDelivered(ctx, "hs2.test", pending[0].QueueID, edus[0].QueueID); err != nil {
			t.Fatal(err)
		}
		if pending, _ = db.PendingPDUs(ctx, "hs2.test", 50); len(pending) != 1 || pending[0].EventNID != 159 {
			t.Fatalf("after delivery: %+v", pending)
		}
		if edus, _ = db.PendingEDUs(ctx, "hs2.test", 100); len(edus) != 0 {
			t.Fatalf("EDUs left: %+v", edus)
		}
		if edus, _ = db.PendingEDUs(ctx, "hs4.test", 100); len(edus) != 1 {
			t.Fatalf("another destination's EDUs: %+v", edus)
		}

		// Back-off state round-trips and a zero state clears it.
		if err := db.SetDestination(ctx, "hs2.test", store.DestinationState{Failures: 3, RetryAfterTS: 99}); err != nil {
			t.Fatal(err)
		}
		if s, err := db.Destination(ctx, "hs2.test"); err != nil || s.Failures != 3 || s.RetryAfterTS != 99 {
			t.Fatalf("destination %+v %v", s, err)
		}
		if err := db.SetDestination(ctx, "hs2.test", store.DestinationState{}); err != nil {
			t.Fatal(err)
		}
		if s, err := db.Destination(ctx, "hs2.test"); err != nil || s.Failures != 0 {
			t.Fatalf("cleared destination %+v %v", s, err)
		}
	})
}

// TestInboundTxns: the first answer to a transaction is kept; a second
// record does not replace it.
func TestInboundTxns(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db := open(t, url)
		if _, found, err := db.InboundTxn(ctx, "hs2.test", "t1"); err != nil || found {
			t.Fatalf("unknown txn: %v %v", found, err)
		}
		if err := db.RecordInboundTxn(ctx, "hs2.test", "t1", []byte(`{"pdus":{}}`), 10); err != nil {
			t.Fatal(err)
		}
		if err := db.RecordInboundTxn(ctx, "hs2.test", "t1", []byte(`{"other":1}`), 11); err != nil {
			t.Fatal(err)
		}
		if r, found, err := db.InboundTxn(ctx, "hs2.test", "t1"); err != nil || !found || string(r) != `{"pdus":{}}` {
			t.Fatalf("answer %s %v %v", r, found, err)
		}
		if err := db.PruneInboundTxns(ctx, 20); err != nil {
			t.Fatal(err)
		}
		if _, found, err := db.InboundTxn(ctx, "hs2.test", "t1"); err != nil || found {
			t.Fatalf("pruned txn: %v %v", found, err)
		}
	})
}
