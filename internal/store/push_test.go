package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// TestPushReadMarks: receipts per thread and room-wide clear exactly the
// notifications they cover, never move back, and a notification stored
// after a receipt that covers it (evaluation runs behind the events) is
// stored read.
func TestPushReadMarks(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db := open(t, url)
		const u, room, other, thread = "@u:hs", "!r:hs", "!o:hs", "$root"
		note := func(pos int64, roomID, threadID string, highlight bool) store.PushNotification {
			actions := `["notify"]`
			if highlight {
				actions = `["notify",{"set_tweak":"highlight"}]`
			}
			return store.PushNotification{UserID: u, RoomID: roomID, ThreadID: threadID, EventID: "$e" + string(rune('a'+pos)),
				EventPos: pos, CountedPos: 100 + pos, Actions: actions, Highlight: highlight, TS: pos}
		}
		deltas, err := db.AddPushNotifications(ctx, []store.PushNotification{
			note(5, room, "", false), note(6, room, thread, false), note(7, room, "", true), note(8, other, "", false),
		})
		if err != nil {
			t.Fatal(err)
		}
		checkDeltas := func(step string, got []store.UnreadDelta, want map[[2]string][2]int64) {
			t.Helper()
			if len(got) != len(want) {
				t.Fatalf("%s: deltas %+v, want %v", step, got, want)
			}
			for _, d := range got {
				if w := want[[2]string{d.RoomID, d.ThreadID}]; d.UserID != u || w != [2]int64{d.Notifications, d.Highlights} {
					t.Fatalf("%s: deltas %+v, want %v", step, got, want)
				}
			}
		}
		checkDeltas("stored", deltas, map[[2]string][2]int64{{room, ""}: {2, 1}, {room, thread}: {1, 0}, {other, ""}: {1, 0}})
		counts := func() map[string][2]int64 {
			t.Helper()
			rows, err := db.UnreadPushCounts(ctx, u, room)
			if err != nil {
				t.Fatal(err)
			}
			out := map[string][2]int64{}
			for _, r := range rows {
				out[r.ThreadID] = [2]int64{r.Notifications, r.Highlights}
			}
			return out
		}
		expect := func(step string, want map[string][2]int64) {
			t.Helper()
			got := counts()
			if len(got) != len(want) {
				t.Fatalf("%s: counts %v, want %v", step, got, want)
			}
			for k, v := range want {
				if got[k] != v {
					t.Fatalf("%s: counts %v, want %v", step, got, want)
				}
			}
		}
		expect("stored", map[string][2]int64{"": {2, 1}, thread: {1, 0}})

		mark := func(threadID string, all bool, pos int64, wantChanged bool) {
			t.Helper()
			changed, err := db.MarkPushRead(ctx, u, room, threadID, all, pos)
			if err != nil || changed != wantChanged {
				t.Fatalf("mark %q all=%v at %d: changed %v (want %v), %v", threadID, all, pos, changed, wantChanged, err)
			}
		}
		mark(thread, false, 6, true)
		expect("thread read", map[string][2]int64{"": {2, 1}})
		mark("", false, 5, true)
		expect("main read to 5", map[string][2]int64{"": {1, 1}})
		mark("", false, 4, false) // an older receipt changes nothing
		expect("stale receipt", map[string][2]int64{"": {1, 1}})
		mark("", true, 7, true)
		expect("all read", map[string][2]int64{})
		if n, err := db.TotalUnreadPush(ctx, u); err != nil || n != 1 {
			t.Fatalf("the other room's notification: %d %v", n, err)
		}

		// Evaluated after the receipt that covers it: stored read.
		deltas, err = db.AddPushNotifications(ctx, []store.PushNotification{note(3, room, thread, false), note(9, room, thread, true)})
		if err != nil {
			t.Fatal(err)
		}
		checkDeltas("late and new", deltas, map[[2]string][2]int64{{room, thread}: {1, 1}})
		expect("late and new", map[string][2]int64{thread: {1, 1}})

		list, err := db.PushNotifications(ctx, u, 0, 10, false)
		if err != nil {
			t.Fatal(err)
		}
		wantRead := map[int64]bool{9: false, 8: false, 7: true, 6: true, 5: true, 3: true}
		if len(list) != len(wantRead) {
			t.Fatalf("listed %d notifications: %+v", len(list), list)
		}
		for i, n := range list {
			if i > 0 && n.EventPos >= list[i-1].EventPos {
				t.Fatalf("not newest first: %+v", list)
			}
			if n.Unread == wantRead[n.EventPos] {
				t.Errorf("notification at %d: unread %v", n.EventPos, n.Unread)
			}
		}
		if hl, err := db.PushNotifications(ctx, u, 9, 10, true); err != nil || len(hl) != 1 || hl[0].EventPos != 7 || !hl[0].Highlight {
			t.Fatalf("highlights before 9: %+v %v", hl, err)
		}
	})
}

// TestPushPruning: read notifications go after readUpto unless they
// highlight, every one after allUpto; unread ones that go stop counting.
func TestPushPruning(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db := open(t, url)
		if err := db.CreateUser(ctx, store.User{Localpart: "u", UserID: "@u:hs", CreatedTS: 1}); err != nil {
			t.Fatal(err)
		}
		const u, room, thread = "@u:hs", "!r:hs", "$root"
		const day = int64(24 * 60 * 60 * 1000)
		now := 100 * day
		note := func(pos int64, threadID string, highlight bool, ts int64) store.PushNotification {
			return store.PushNotification{UserID: u, RoomID: room, ThreadID: threadID, EventID: "$e" + string(rune('a'+pos)),
				EventPos: pos, CountedPos: 100 + pos, Actions: `["notify"]`, Highlight: highlight, TS: ts}
		}
		if _, err := db.AddPushNotifications(ctx, []store.PushNotification{
			note(1, "", false, now-40*day), note(2, thread, true, now-40*day),
			note(3, "", true, now-10*day), note(4, "", false, now-10*day),
			note(5, "", false, now-day/24), note(6, thread, false, now-day/24),
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.MarkPushRead(ctx, u, room, "", false, 4); err != nil {
			t.Fatal(err)
		}

		readUpto, allUpto, err := db.PushPruneBounds(ctx, now-day, now-30*day)
		if err != nil || readUpto != 4 || allUpto != 2 {
			t.Fatalf("bounds: read %d all %d, want 4 and 2 (%v)", readUpto, allUpto, err)
		}
		// Two at a time, to go through the paging.
		var expired []store.UnreadDelta
		deleted := 0
		for after, done := int64(0), false; !done; {
			var e []store.UnreadDelta
			var n int
			e, n, after, done, err = db.PruneUserNotifications(ctx, u, after, readUpto, allUpto, 2)
			if err != nil {
				t.Fatal(err)
			}
			expired, deleted = append(expired, e...), deleted+n
		}
		if deleted != 3 || len(expired) != 1 || expired[0].RoomID != room || expired[0].ThreadID != thread ||
			expired[0].Notifications != 1 || expired[0].Highlights != 1 {
			t.Fatalf("deleted %d, expired %+v", deleted, expired)
		}
		if _, err := db.PrunePushEvents(ctx, allUpto); err != nil {
			t.Fatal(err)
		}
		list, err := db.PushNotifications(ctx, u, 0, 10, false)
		if err != nil {
			t.Fatal(err)
		}
		var kept []int64
		for _, n := range list {
			kept = append(kept, n.EventPos)
		}
		if fmt.Sprint(kept) != "[6 5 3]" {
			t.Fatalf("kept %v, want [6 5 3]", kept)
		}
		counts, err := db.UnreadPushCounts(ctx, u, room)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string][2]int64{}
		for _, c := range counts {
			got[c.ThreadID] = [2]int64{c.Notifications, c.Highlights}
		}
		if len(got) != 2 || got[""] != [2]int64{1, 0} || got[thread] != [2]int64{1, 0} {
			t.Fatalf("counts after pruning: %v", got)
		}
		// Reading everything afterwards still clears the counts.
		if _, err := db.MarkPushRead(ctx, u, room, "", true, 6); err != nil {
			t.Fatal(err)
		}
		if n, err := db.TotalUnreadPush(ctx, u); err != nil || n != 0 {
			t.Fatalf("unread after reading all: %d %v", n, err)
		}
	})
}
