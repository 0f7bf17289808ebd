package store

import (
	"context"
	"slices"
	"testing"

	"github.com/myelin-chat/myelin/internal/testdb"
)

// TestPurgeRoomCoversEveryTable: every table of the schema with a
// room_id column is either cleared by PurgeRoom or one it keeps on
// purpose (blocked_rooms, content_reports), so that a migration adding a room-keyed
// table fails here until the purge knows it; and a purge removes the
// room's rows from each of them, on both engines, leaving other rooms'.
func TestPurgeRoomCoversEveryTable(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db, err := Open(ctx, url, 4)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		catalog := `SELECT m.name FROM sqlite_master m JOIN pragma_table_info(m.name) p WHERE m.type = 'table' AND p.name = 'room_id' ORDER BY m.name`
		if db.Engine() == "postgres" {
			catalog = `SELECT table_name FROM information_schema.columns WHERE column_name = 'room_id' AND table_schema = current_schema() ORDER BY table_name`
		}
		tables, err := db.r().strings(ctx, catalog)
		if err != nil {
			t.Fatal(err)
		}
		if len(tables) < 10 {
			t.Fatalf("catalog lists only %v", tables)
		}
		for _, tb := range tables {
			if !slices.Contains(roomTables, tb) && !slices.Contains(PurgeKeptTables, tb) {
				t.Errorf("table %s has a room_id column but PurgeRoom neither clears nor keeps it", tb)
			}
		}
		for _, tb := range roomTables {
			if !slices.Contains(tables, tb) {
				t.Errorf("PurgeRoom clears %s, which has no room_id column", tb)
			}
		}

		// Rows of two rooms in the tables whose rows are cheap to write
		// by hand; the purge of one leaves the other's.
		const gone, kept = "!gone:hs", "!kept:hs"
		w := db.w()
		for i, room := range []string{gone, kept} {
			base := int64(i * 10)
			for _, q := range []struct {
				sql  string
				args []any
			}{
				{`INSERT INTO rooms (room_id, room_version, created_ts) VALUES ($1, '12', 0)`, []any{room}},
				{`INSERT INTO events (event_id, room_id, type, sender, depth, origin_ts, stream_pos, json) VALUES ($1, $2, 'm.room.message', '@u:hs', 1, 0, $3, '{}')`, []any{"$e" + room, room, base + 1}},
				{`INSERT INTO state_snapshots (room_id) VALUES ($1)`, []any{room}},
				{`INSERT INTO current_state (room_id, type, state_key, event_nid) VALUES ($1, 't', '', 1)`, []any{room}},
				{`INSERT INTO forward_extremities (room_id, event_id) VALUES ($1, $2)`, []any{room, "$e" + room}},
				{`INSERT INTO room_heads (room_id, snapshot, depth) VALUES ($1, 1, 1)`, []any{room}},
				{`INSERT INTO room_aliases (alias, room_id, creator) VALUES ($1, $2, '@u:hs')`, []any{"#a" + room, room}},
				{`INSERT INTO forgotten_rooms (user_id, room_id) VALUES ('@u:hs', $1)`, []any{room}},
				{`INSERT INTO receipts (room_id, user_id, receipt_type, thread_id, event_id, ts, stream_pos) VALUES ($1, '@u:hs', 'm.read', '', 'x', 0, $2)`, []any{room, base + 2}},
				{`INSERT INTO search_events (event_nid, key, room_id, sender, stream_pos, origin_ts, value) VALUES ($1, 'content.body', $2, '@u:hs', 1, 0, 'hello')`, []any{base + 3, room}},
				{`INSERT INTO push_events (event_pos, room_id, thread_id, event_id, ts, actions) VALUES ($1, $2, '', 'x', 0, '[]')`, []any{base + 4, room}},
				{`INSERT INTO push_user_batches (user_id, last_pos, first_pos, room_id, thread_id, notes) VALUES ('@u:hs', $1, $1, $2, '', '0')`, []any{base + 4, room}},
				{`INSERT INTO account_data (user_id, room_id, data_type, content, stream_pos) VALUES ('@u:hs', $1, 'm.tag', '{}', $2)`, []any{room, base + 5}},
				{`INSERT INTO blocked_rooms (room_id, blocked_by) VALUES ($1, '@admin:hs')`, []any{room}},
				{`INSERT INTO content_reports (reporter, room_id, event_id, target_user_id, reason, received_ts) VALUES ('@u:hs', $1, '', '', 'spam', 0)`, []any{room}},
				{`INSERT INTO reputation_feeds (feed, room_id, weight, source, added_ts) VALUES ($1, $1, 1, 'admin', 0)`, []any{room}},
				{`INSERT INTO media_rooms (media_origin, media_id, room_id) VALUES ('hs', 'm', $1)`, []any{room}},
			} {
				if _, err := w.exec(ctx, q.sql, q.args...); err != nil {
					t.Fatalf("%s: %v", q.sql, err)
				}
			}
		}
		p, err := db.PurgeRoom(ctx, gone)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.EventIDs) != 1 || p.EventIDs[0] != "$e"+gone || len(p.Snapshots) != 1 {
			t.Fatalf("purged %+v", p)
		}
		count := func(q string, room string) int64 {
			var n int64
			if err := db.r().queryRow(ctx, q, []any{room}, &n); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			return n
		}
		for _, tb := range append(append([]string(nil), roomTables...), PurgeKeptTables...) {
			q := `SELECT COUNT(*) FROM ` + tb + ` WHERE room_id = $1`
			keptHere := slices.Contains(PurgeKeptTables, tb)
			if n := count(q, gone); (n > 0) != keptHere {
				t.Errorf("%s: %d rows of the purged room left (kept table: %v)", tb, n, keptHere)
			}
		}
		for _, tb := range []string{"events", "rooms", "receipts", "search_events", "push_events", "account_data", "room_aliases"} {
			if n := count(`SELECT COUNT(*) FROM `+tb+` WHERE room_id = $1`, kept); n == 0 {
				t.Errorf("%s: the other room's rows went too", tb)
			}
		}
		if n := count(`SELECT COUNT(*) FROM push_user_batches WHERE user_id = $1`, "@u:hs"); n != 1 {
			t.Errorf("push_user_batches: %d rows left, want the other room's 1", n)
		}
		if n := count(`SELECT COUNT(*) FROM state_snapshots WHERE room_id = $1`, kept); n != 1 {
			t.Errorf("state_snapshots of the other room: %d", n)
		}
	})
}
