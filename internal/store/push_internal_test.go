package store

import (
	"context"
	"testing"

	"github.com/myelin-chat/myelin/internal/testdb"
)

// TestPushCompactMigration: notifications stored one row per user and
// event before migration 11 come through it with their actions, their
// read state and the unread counters intact.
func TestPushCompactMigration(t *testing.T) {
	testdb.ForEachEmpty(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db, err := open(url, 2)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.migrateUpTo(ctx, 10); err != nil {
			t.Fatal(err)
		}
		old := []struct {
			user, event string
			pos         int64
			actions     string
			highlight   int
			unread      int
		}{
			{"@a:hs", "$1", 10, `["notify"]`, 0, 0},
			{"@b:hs", "$1", 10, `["notify"]`, 0, 1},
			{"@c:hs", "$1", 10, `["notify",{"set_tweak":"highlight"}]`, 1, 1},
			{"@a:hs", "$2", 12, `["notify"]`, 0, 1},
		}
		for _, o := range old {
			if _, err := db.w().exec(ctx, `INSERT INTO push_notifications (user_id, room_id, thread_id, event_id, event_pos, counted_pos, actions, highlight, ts, unread)
				VALUES ($1, '!r:hs', '', $2, $3, $3, $4, $5, 1000, $6)`, o.user, o.event, o.pos, o.actions, o.highlight, o.unread); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.w().exec(ctx, `INSERT INTO push_unread (user_id, room_id, thread_id, notifs, highlights) VALUES
			('@a:hs', '!r:hs', '', 1, 0), ('@b:hs', '!r:hs', '', 1, 0), ('@c:hs', '!r:hs', '', 1, 1)`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.w().exec(ctx, `INSERT INTO push_counts_changed (user_id, room_id, counted_pos) VALUES
			('@a:hs', '!r:hs', 12), ('@c:hs', '!r:hs', 10)`); err != nil {
			t.Fatal(err)
		}
		if err := db.migrate(ctx); err != nil {
			t.Fatal(err)
		}

		for _, o := range old {
			got, err := db.PushNotifications(ctx, o.user, o.pos+1, 1, false)
			if err != nil || len(got) != 1 {
				t.Fatalf("%s: %v %+v", o.user, err, got)
			}
			n := got[0]
			if n.EventID != o.event || n.EventPos != o.pos || n.Actions != o.actions || n.Highlight != (o.highlight == 1) || n.Unread != (o.unread == 1) || n.RoomID != "!r:hs" || n.TS != 1000 {
				t.Errorf("%s %s: %+v", o.user, o.event, n)
			}
		}
		if rooms, err := db.PushCountsChanged(ctx, "@c:hs", 9, 11); err != nil || len(rooms) != 1 || rooms[0] != "!r:hs" {
			t.Fatalf("c's counts changed at 10: %v %v", rooms, err)
		}
		if rooms, err := db.PushCountsChanged(ctx, "@a:hs", 9, 11); err != nil || len(rooms) != 0 {
			t.Fatalf("a's counts changed at 12, not in (9, 11]: %v %v", rooms, err)
		}
		// a read $1 and has $2 unread; a receipt at $2 clears it.
		changed, err := db.MarkPushRead(ctx, "@a:hs", "!r:hs", "", true, 12)
		if err != nil || !changed {
			t.Fatalf("mark read: %v %v", changed, err)
		}
		if n, err := db.TotalUnreadPush(ctx, "@a:hs"); err != nil || n != 0 {
			t.Fatalf("a's unread after receipt: %d %v", n, err)
		}
		if n, err := db.TotalUnreadPush(ctx, "@c:hs"); err != nil || n != 1 {
			t.Fatalf("c's unread: %d %v", n, err)
		}
	})
}
