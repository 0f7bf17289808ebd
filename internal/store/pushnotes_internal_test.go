package store

import (
	"context"
	"fmt"
	"testing"

	"github.com/myelin-chat/myelin/internal/testdb"
)

// TestNotesRowsPacking: a batch's notifications become a row per user,
// room and thread; a notification with actions of its own gets its own
// row; a row never spans notesSpan positions; the packed column reads
// back as written and a malformed one is an error.
func TestNotesRowsPacking(t *testing.T) {
	note := func(user, room, thread string, pos int64, hl bool, actions string) PushNotification {
		return PushNotification{UserID: user, RoomID: room, ThreadID: thread, EventPos: pos, Highlight: hl, Actions: actions}
	}
	const n = `["notify"]`
	ns := []PushNotification{
		note("@u", "!a", "", 12, false, n), note("@u", "!b", "", 11, true, n), note("@u", "!a", "", 10, true, n),
		note("@u", "!a", "$t", 13, false, n), note("@u", "!a", "", 14, false, `["own"]`), note("@v", "!a", "", 10, false, n),
		note("@u", "!a", "", 15, false, n), note("@u", "!a", "", 10+notesSpan, false, n), note("@u", "!a", "", 15, false, n),
	}
	shared := map[int64]string{10: n, 11: n, 12: n, 13: n, 14: n, 15: n, 10 + notesSpan: n}
	var got []string
	for _, r := range notesRows(ns, shared) {
		a := "-"
		if r.actions != nil {
			a = *r.actions
		}
		got = append(got, fmt.Sprintf("%s %s %q %d-%d %s %s", r.userID, r.roomID, r.threadID, r.first, r.last, packNotes(r.first, r.notes), a))
		back, err := unpackNotes(r.first, packNotes(r.first, r.notes))
		if err != nil || fmt.Sprint(back) != fmt.Sprint(r.notes) {
			t.Fatalf("round trip of %v: %v %v", r.notes, back, err)
		}
	}
	want := []string{
		`@u !b "" 11-11 0h -`, `@u !a "$t" 13-13 0 -`, `@u !a "" 14-14 0 ["own"]`, `@u !a "" 10-15 0h,2,5 -`,
		fmt.Sprintf(`@u !a "" %d-%d 0 -`, 10+notesSpan, 10+notesSpan), `@v !a "" 10-10 0 -`,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("rows\n%q\nwant\n%q", got, want)
	}
	for _, bad := range []string{"x", "1,", "-1", "1hh", "h"} {
		if _, err := unpackNotes(0, bad); err == nil {
			t.Errorf("%q unpacked", bad)
		}
	}
}

// TestPackedNotificationsPurgeHistory: purging a room's history before a
// position inside a packed row takes those notifications out of the
// row and keeps the rest; a notification whose push_events row is gone
// is not listed, and the list still fills its limit.
func TestPackedNotificationsPurgeHistory(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db, err := Open(ctx, url, 4)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		const u, room, other = "@u:hs", "!r:hs", "!o:hs"
		var ns []PushNotification
		for pos := int64(1); pos <= 7; pos++ {
			r := room
			if pos == 7 {
				r = other
			}
			id := fmt.Sprintf("$e%d", pos)
			if _, err := db.w().exec(ctx, `INSERT INTO events (event_id, room_id, type, sender, depth, origin_ts, stream_pos, json)
				VALUES ($1, $2, 'm.room.message', '@x:there', $3, 0, $3, '{}')`, id, r, pos); err != nil {
				t.Fatal(err)
			}
			ns = append(ns, PushNotification{UserID: u, RoomID: r, EventID: id, EventPos: pos, CountedPos: pos, Actions: `["notify"]`, TS: pos})
		}
		if _, err := db.w().exec(ctx, `INSERT INTO forward_extremities (room_id, event_id) VALUES ($1, '$e6')`, room); err != nil {
			t.Fatal(err)
		}
		if _, err := db.AddPushNotifications(ctx, ns); err != nil {
			t.Fatal(err)
		}
		list := func(limit int) string {
			t.Helper()
			got, err := db.PushNotifications(ctx, u, 0, limit, false)
			if err != nil {
				t.Fatal(err)
			}
			var ps []int64
			for _, n := range got {
				ps = append(ps, n.EventPos)
			}
			return fmt.Sprint(ps)
		}
		if _, err := db.PurgeHistory(ctx, room, 4, ""); err != nil {
			t.Fatal(err)
		}
		if got := list(10); got != "[7 6 5 4]" {
			t.Fatalf("after purging before 4: %s", got)
		}
		var first, last int64
		var notes string
		if err := db.r().queryRow(ctx, `SELECT first_pos, last_pos, notes FROM push_user_batches WHERE user_id = $1 AND room_id = $2`,
			[]any{u, room}, &first, &last, &notes); err != nil || first != 4 || last != 6 || notes != "0,1,2" {
			t.Fatalf("the room's row: %d-%d %q (%v)", first, last, notes, err)
		}
		if _, err := db.w().exec(ctx, `DELETE FROM push_events WHERE event_pos = 6`); err != nil {
			t.Fatal(err)
		}
		if got := list(2); got != "[7 5]" {
			t.Fatalf("with 6's push_events row gone, limit 2: %s", got)
		}
	})
}
