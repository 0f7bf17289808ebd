package store

import (
	"context"
	"testing"

	"github.com/myelin-chat/myelin/internal/testdb"
)

// TestTxnScopeMigration: events sent with a transaction ID before
// migration 14 are found again by a retry of their send path, the same
// txnId on another path is free, and to-device transactions recorded
// before it do not swallow a new event type's messages.
func TestTxnScopeMigration(t *testing.T) {
	testdb.ForEachEmpty(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db, err := open(url, 2)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.migrateUpTo(ctx, 13); err != nil {
			t.Fatal(err)
		}
		if _, err := db.w().exec(ctx, `INSERT INTO events (event_id, room_id, type, sender, depth, origin_ts, stream_pos,
			txn_localpart, txn_device, txn_id, json) VALUES ('$old', '!r:hs', 'm.room.message', '@a:hs', 3, 1000, 7, 'a', 'DEV', 't1', '{}')`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.w().exec(ctx, `INSERT INTO to_device_txns (user_id, device_id, txn_id, ts) VALUES ('@a:hs', 'DEV', 'd1', 1000)`); err != nil {
			t.Fatal(err)
		}
		if err := db.migrate(ctx); err != nil {
			t.Fatal(err)
		}
		if id, err := db.EventByTxn(ctx, "a", "DEV", "!r:hs", "send/m.room.message", "t1"); err != nil || id != "$old" {
			t.Fatalf("retry of the old send: %q %v, want $old", id, err)
		}
		if id, err := db.EventByTxn(ctx, "a", "DEV", "!r:hs", "send/m.reaction", "t1"); err != ErrNotFound {
			t.Fatalf("same txnId, another type: %q %v, want not found", id, err)
		}
		dup, err := db.QueueToDevice(ctx, "@a:hs", "DEV", "m.test", "d1", 2000, nil)
		if err != nil || dup {
			t.Fatalf("to-device txn d1 of a new type after the migration: duplicate=%v %v", dup, err)
		}
		if dup, err := db.QueueToDevice(ctx, "@a:hs", "DEV", "m.test", "d1", 3000, nil); err != nil || !dup {
			t.Fatalf("the same to-device path again: duplicate=%v %v, want a duplicate", dup, err)
		}
	})
}
