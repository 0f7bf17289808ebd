package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// A user's notifications are stored packed: one push_user_batches row
// holds those of one push batch in one room thread (migration 0051).
// Row count, not page count, is what storing them costs (modernc SQLite
// spends ~1.5-2.4 us binding, seeking and balancing per row: "Throughput,
// third pass" in docs/benchmarks.md), and a message into a room of N
// members wrote N-1 rows; a batch of several messages now writes one
// row per recipient.

// notesSpan bounds a row's positions (last_pos - first_pos < notesSpan)
// so that the rows holding a position p are found in the primary key's
// range last_pos in [p, p+notesSpan): rows of one batch in different
// rooms overlap, and nothing else would bound where a row that began
// before p ends.
const notesSpan = 1024

// packedNote is one notification of a packed row.
type packedNote struct {
	pos       int64
	highlight bool
}

// notesRow is a push_user_batches row. actions is set only on a row of
// one notification whose actions differ from the event's shared ones:
// such a notification (a mention's highlight, a user's own rule) gets a
// row of its own, so that the packed column needs no escaping and the
// migration converts each old row as it is.
type notesRow struct {
	userID, roomID, threadID string
	first, last              int64
	notes                    []packedNote
	actions                  *string
}

// packNotes renders notes (ascending positions from first) as offsets
// from first, "h" marking a highlight: "0,3h,7".
func packNotes(first int64, notes []packedNote) string {
	b := make([]byte, 0, 4*len(notes))
	for i, n := range notes {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, n.pos-first, 10)
		if n.highlight {
			b = append(b, 'h')
		}
	}
	return string(b)
}

var errBadNotes = errors.New("store: malformed packed notifications")

// unpackNotes reverses packNotes.
func unpackNotes(first int64, s string) ([]packedNote, error) {
	out := make([]packedNote, 0, strings.Count(s, ",")+1)
	if s == "" {
		return out, nil
	}
	for entry := range strings.SplitSeq(s, ",") {
		var n packedNote
		if d, ok := strings.CutSuffix(entry, "h"); ok {
			entry, n.highlight = d, true
		}
		off, err := strconv.ParseInt(entry, 10, 64)
		if err != nil || off < 0 {
			return nil, fmt.Errorf("%w: %q", errBadNotes, entry)
		}
		n.pos = first + off
		out = append(out, n)
	}
	return out, nil
}

// notesRows groups notifications into rows: per user, room and thread,
// in position order, split where a row would span notesSpan positions,
// and a row of its own for a notification with its own actions.
// Duplicates of a (user, position) are stored once.
func notesRows(ns []PushNotification, shared map[int64]string) []notesRow {
	type key struct{ user, room, thread string }
	groups := map[key][]int{}
	var keys []key
	for i, n := range ns {
		k := key{n.UserID, n.RoomID, n.ThreadID}
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], i)
	}
	var rows []notesRow
	for _, k := range keys {
		idx := groups[k]
		slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(ns[a].EventPos, ns[b].EventPos) })
		cur := -1 // the row being filled, by index: appends move rows
		for j, i := range idx {
			n := ns[i]
			if j > 0 && ns[idx[j-1]].EventPos == n.EventPos {
				continue
			}
			note := packedNote{n.EventPos, n.Highlight}
			if n.Actions != shared[n.EventPos] {
				a := n.Actions
				rows = append(rows, notesRow{userID: k.user, roomID: k.room, threadID: k.thread,
					first: n.EventPos, last: n.EventPos, notes: []packedNote{note}, actions: &a})
				continue
			}
			if cur < 0 || n.EventPos-rows[cur].first >= notesSpan {
				rows = append(rows, notesRow{userID: k.user, roomID: k.room, threadID: k.thread, first: n.EventPos})
				cur = len(rows) - 1
			}
			rows[cur].notes = append(rows[cur].notes, note)
			rows[cur].last = n.EventPos
		}
	}
	// In key order, so that each user's rows go into the B-tree one
	// after the other.
	slices.SortFunc(rows, func(a, b notesRow) int {
		return cmp.Or(strings.Compare(a.userID, b.userID), cmp.Compare(a.last, b.last))
	})
	return rows
}

func insertNotesRows(ctx context.Context, c conn, rows []notesRow) error {
	args := make([]any, 0, 7*len(rows))
	for _, r := range rows {
		var actions any
		if r.actions != nil {
			actions = *r.actions
		}
		args = append(args, r.userID, r.last, r.first, r.roomID, r.threadID, packNotes(r.first, r.notes), actions)
	}
	return execRows(ctx, c, `INSERT INTO push_user_batches (user_id, last_pos, first_pos, room_id, thread_id, notes, actions) VALUES `, 7,
		` ON CONFLICT (user_id, last_pos) DO NOTHING`, args)
}

// notesRowColumns are what scanNotesRow reads, in its order.
const notesRowColumns = `user_id, last_pos, first_pos, room_id, thread_id, notes, actions`

func scanNotesRow(scan func(...any) error) (notesRow, error) {
	var r notesRow
	var packed string
	if err := scan(&r.userID, &r.last, &r.first, &r.roomID, &r.threadID, &packed, &r.actions); err != nil {
		return r, err
	}
	var err error
	r.notes, err = unpackNotes(r.first, packed)
	return r, err
}

// keepNotes rewrites a row to hold only the notes keep accepts,
// deleting it when none is left. It reports how many notes went.
func keepNotes(ctx context.Context, c conn, r notesRow, keep func(packedNote) bool) (int, error) {
	kept := make([]packedNote, 0, len(r.notes))
	for _, n := range r.notes {
		if keep(n) {
			kept = append(kept, n)
		}
	}
	gone := len(r.notes) - len(kept)
	if gone == 0 {
		return 0, nil
	}
	if _, err := c.exec(ctx, `DELETE FROM push_user_batches WHERE user_id = $1 AND last_pos = $2`, r.userID, r.last); err != nil {
		return 0, err
	}
	if len(kept) == 0 {
		return gone, nil
	}
	r.notes, r.first, r.last = kept, kept[0].pos, kept[len(kept)-1].pos
	return gone, insertNotesRows(ctx, c, []notesRow{r})
}

// spanEnd is the exclusive upper bound of last_pos for the rows that
// can hold position p.
func spanEnd(p int64) int64 {
	return min(p, math.MaxInt64-notesSpan) + notesSpan
}

// purgeNotifications deletes a room's notifications of the events at
// the positions query lists, from every user's packed rows.
func purgeNotifications(ctx context.Context, c conn, roomID, query string, args ...any) error {
	positions, err := int64s(ctx, c, query, args...)
	if err != nil || len(positions) == 0 {
		return err
	}
	purged := make(map[int64]bool, len(positions))
	for _, p := range positions {
		purged[p] = true
	}
	rows, err := collect(ctx, c, scanNotesRow, `SELECT `+notesRowColumns+` FROM push_user_batches
		WHERE room_id = $1 AND first_pos <= $2`, roomID, slices.Max(positions))
	if err != nil {
		return err
	}
	for _, r := range rows {
		if _, err := keepNotes(ctx, c, r, func(n packedNote) bool { return !purged[n.pos] }); err != nil {
			return err
		}
	}
	return nil
}
