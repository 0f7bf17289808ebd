package store_test

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// notesModel is what the stored notifications of a user must read as,
// kept beside the store: the notifications, and the read marks.
type notesModel struct {
	notes map[int64]store.PushNotification
	marks map[[2]string]int64 // (room, thread or "*") -> read position
}

func (m *notesModel) read(n store.PushNotification) bool {
	return n.EventPos <= max(m.marks[[2]string{n.RoomID, "*"}], m.marks[[2]string{n.RoomID, n.ThreadID}])
}

// list is what GET /notifications answers.
func (m *notesModel) list(before int64, limit int, onlyHighlight bool) []store.PushNotification {
	var out []store.PushNotification
	for _, n := range m.notes {
		if (before <= 0 || n.EventPos < before) && (!onlyHighlight || n.Highlight) {
			n.Unread = !m.read(n)
			out = append(out, n)
		}
	}
	slices.SortFunc(out, func(a, b store.PushNotification) int { return cmp.Compare(b.EventPos, a.EventPos) })
	return out[:min(limit, len(out))]
}

// counts are a room's unread counts per thread.
func (m *notesModel) counts(room string) map[string][2]int64 {
	out := map[string][2]int64{}
	for _, n := range m.notes {
		if n.RoomID == room && !m.read(n) {
			c := out[n.ThreadID]
			c[0]++
			if n.Highlight {
				c[1]++
			}
			out[n.ThreadID] = c
		}
	}
	return out
}

func describe(ns []store.PushNotification) string {
	s := ""
	for _, n := range ns {
		s += fmt.Sprintf("\n  %d %s %q %s %s hl=%v unread=%v ts=%d", n.EventPos, n.RoomID, n.ThreadID, n.EventID, n.Actions, n.Highlight, n.Unread, n.TS)
	}
	return s
}

const (
	nbUser, nbOther        = "@u:hs", "@v:hs"
	nbRoomA, nbRoomB       = "!a:hs", "!b:hs"
	nbThread               = "$root"
	nbNotify, nbHighlightA = `["notify"]`, `["notify",{"set_tweak":"highlight"}]`
)

// nbFixture stores notifications for u in two push batches: the first
// interleaves two rooms and a thread at positions 10-29 (packed rows
// that overlap), with highlights, and one notification whose actions
// differ from the event's shared ones; the second spans more than a
// packed row may (3000-6500). Another user's notifications lie between.
func nbFixture(t *testing.T, ctx context.Context, db *store.DB) *notesModel {
	t.Helper()
	m := &notesModel{notes: map[int64]store.PushNotification{}, marks: map[[2]string]int64{}}
	note := func(user string, pos int64, room, thread string, highlight bool, actions string) store.PushNotification {
		return store.PushNotification{UserID: user, RoomID: room, ThreadID: thread, EventID: fmt.Sprintf("$e%d", pos),
			EventPos: pos, CountedPos: pos, Actions: actions, Highlight: highlight, TS: 1000 + pos}
	}
	var batch1 []store.PushNotification
	for pos := int64(10); pos < 30; pos++ {
		room, thread := nbRoomA, ""
		switch pos % 3 {
		case 1:
			room = nbRoomB
		case 2:
			thread = nbThread
		}
		highlight := pos%4 == 0
		actions := nbNotify
		if highlight {
			actions = nbHighlightA
		}
		// The other user is notified of the same events, and of 17 with
		// the same actions as a third: u's are its own (a mention).
		batch1 = append(batch1, note(nbOther, pos, room, thread, highlight, actions))
		if pos == 17 {
			batch1 = append(batch1, note("@w:hs", pos, room, thread, false, nbNotify))
			highlight, actions = true, nbHighlightA
		}
		if pos%5 == 3 {
			continue // u is not notified of every event
		}
		n := note(nbUser, pos, room, thread, highlight, actions)
		batch1 = append(batch1, n)
		m.notes[pos] = n
	}
	if _, err := db.AddPushNotifications(ctx, batch1); err != nil {
		t.Fatal(err)
	}
	var batch2 []store.PushNotification
	for _, pos := range []int64{3000, 3001, 3500, 4100, 5000, 6500} {
		room := nbRoomA
		if pos == 3500 {
			room = nbRoomB
		}
		n := note(nbUser, pos, room, "", pos == 4100, nbNotify)
		batch2 = append(batch2, n, note(nbOther, pos, room, "", false, nbNotify))
		m.notes[pos] = n
	}
	if _, err := db.AddPushNotifications(ctx, batch2); err != nil {
		t.Fatal(err)
	}
	// More rows than a page of the readers' queries, the two rooms'
	// rows of each batch overlapping.
	for base := int64(8000); base < 8200; base += 10 {
		var batch []store.PushNotification
		for i := int64(0); i < 7; i++ {
			room, thread := nbRoomA, ""
			switch i % 3 {
			case 1:
				room = nbRoomB
			case 2:
				thread = nbThread
			}
			n := note(nbUser, base+i, room, thread, i == 0 || i == 4, nbNotify)
			if n.Highlight {
				n.Actions = nbHighlightA
			}
			batch = append(batch, n)
			m.notes[n.EventPos] = n
		}
		if _, err := db.AddPushNotifications(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func checkNotes(t *testing.T, ctx context.Context, db *store.DB, m *notesModel, step string) {
	t.Helper()
	// Each notification's position and the one after it (often the next
	// notification's: asked once).
	positions := []int64{0, 1, 7000, 9000}
	for pos := range m.notes {
		positions = append(positions, pos, pos+1)
	}
	slices.Sort(positions)
	positions = slices.Compact(positions)
	// With the default page, and with a row a page, which makes every
	// page end inside rows that overlap.
	for _, pageMin := range []int{0, 1} {
		if pageMin > 0 {
			defer store.SetNotesPageMin(pageMin)()
		}
		for _, before := range positions {
			for _, limit := range []int{1, 3, 50} {
				for _, hl := range []bool{false, true} {
					got, err := db.PushNotifications(ctx, nbUser, before, limit, hl)
					if err != nil {
						t.Fatal(err)
					}
					if want := m.list(before, limit, hl); describe(got) != describe(want) {
						t.Fatalf("%s: notifications before %d, limit %d, highlights only %v, page %d:%s\nwant:%s",
							step, before, limit, hl, pageMin, describe(got), describe(want))
					}
				}
			}
		}
	}
	// Paging through with the token of each page's last one.
	var all []store.PushNotification
	for before := int64(0); ; {
		page, err := db.PushNotifications(ctx, nbUser, before, 4, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		all, before = append(all, page...), page[len(page)-1].EventPos
	}
	if want := m.list(0, 1000, false); describe(all) != describe(want) {
		t.Fatalf("%s: paged:%s\nwant:%s", step, describe(all), describe(want))
	}
	for _, room := range []string{nbRoomA, nbRoomB} {
		rows, err := db.UnreadPushCounts(ctx, nbUser, room)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string][2]int64{}
		for _, r := range rows {
			got[r.ThreadID] = [2]int64{r.Notifications, r.Highlights}
		}
		if want := m.counts(room); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: counts in %s %v, want %v", step, room, got, want)
		}
	}
}

// TestPackedNotificationsRead: notifications stored packed (a user's of
// one push batch in one room thread per row) read back as they were
// stored, through every page boundary of /notifications (inside a
// packed row, between rows of different rooms that overlap), with
// highlights only, and their counts through receipts that fall inside
// a packed row: main timeline, thread, room-wide.
func TestPackedNotificationsRead(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db := open(t, url)
		m := nbFixture(t, ctx, db)
		checkNotes(t, ctx, db, m, "stored")
		for _, r := range []struct {
			room, thread string
			all          bool
			pos          int64
		}{
			{nbRoomA, "", false, 16},       // inside the main timeline's row
			{nbRoomA, nbThread, false, 20}, // inside the thread's row
			{nbRoomB, "", true, 22},        // room-wide, inside B's row
			{nbRoomA, "", true, 3001},      // room-wide, covers the thread's rest
			{nbRoomA, "", false, 12},       // behind the mark: nothing changes
		} {
			changed, err := db.MarkPushRead(ctx, nbUser, r.room, r.thread, r.all, r.pos)
			if err != nil {
				t.Fatal(err)
			}
			key := [2]string{r.room, r.thread}
			if r.all {
				key[1] = "*"
			}
			before := m.counts(r.room)
			m.marks[key] = max(m.marks[key], r.pos)
			if want := fmt.Sprint(before) != fmt.Sprint(m.counts(r.room)); changed != want {
				t.Fatalf("receipt %+v: changed %v, want %v", r, changed, want)
			}
			checkNotes(t, ctx, db, m, fmt.Sprintf("after receipt %+v", r))
		}
	})
}

// TestPackedNotificationsPrune: pruning with bounds inside packed rows
// deletes exactly the notifications the rules name, and rewrites the
// rest of each row; a row at a time, to go through the paging.
func TestPackedNotificationsPrune(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db := open(t, url)
		m := nbFixture(t, ctx, db)
		// Read beyond readUpto: what is read above it stays.
		if _, err := db.MarkPushRead(ctx, nbUser, nbRoomA, "", false, 28); err != nil {
			t.Fatal(err)
		}
		m.marks[[2]string{nbRoomA, ""}] = 28
		const readUpto, allUpto = 26, 14
		want := map[[2]string][2]int64{}
		for pos, n := range m.notes {
			read := m.read(n)
			if pos <= allUpto || pos <= readUpto && read && !n.Highlight {
				if !read {
					c := want[[2]string{n.RoomID, n.ThreadID}]
					c[0]++
					if n.Highlight {
						c[1]++
					}
					want[[2]string{n.RoomID, n.ThreadID}] = c
				}
				delete(m.notes, pos)
			}
		}
		got := map[[2]string][2]int64{}
		for after, done := int64(0), false; !done; {
			expired, _, next, fin, err := db.PruneUserNotifications(ctx, nbUser, after, readUpto, allUpto, 1)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range expired {
				c := got[[2]string{e.RoomID, e.ThreadID}]
				got[[2]string{e.RoomID, e.ThreadID}] = [2]int64{c[0] + e.Notifications, c[1] + e.Highlights}
			}
			after, done = next, fin
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("expired %v, want %v", got, want)
		}
		checkNotes(t, ctx, db, m, "pruned")
		// Pruning again finds nothing more.
		if _, n, _, _, err := db.PruneUserNotifications(ctx, nbUser, 0, readUpto, allUpto, 100); err != nil || n != 0 {
			t.Fatalf("second prune deleted %d (%v)", n, err)
		}
	})
}

// TestPackedNotificationsPurgeRoom: purging one room takes its rows of
// the packed batches and leaves the other room's.
func TestPackedNotificationsPurgeRoom(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db := open(t, url)
		m := nbFixture(t, ctx, db)
		if _, err := db.PurgeRoom(ctx, nbRoomB); err != nil {
			t.Fatal(err)
		}
		for pos, n := range m.notes {
			if n.RoomID == nbRoomB {
				delete(m.notes, pos)
			}
		}
		checkNotes(t, ctx, db, m, "room B purged")
	})
}
