package store_test

import (
	"context"
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
