package store

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"math"
	"slices"
	"strings"
)

// PushNotification is an event a user's push rules notify about.
type PushNotification struct {
	UserID     string
	RoomID     string
	ThreadID   string // "" for the main timeline
	EventID    string
	EventPos   int64 // also the notification's ID
	CountedPos int64
	Actions    string
	Highlight  bool
	TS         int64
	Unread     bool
}

// allThreadsMark is the thread_id of a room-wide read mark in push_read.
const allThreadsMark = "*"

// UnreadDelta is what storing notifications added to a user's unread
// counts in a room thread.
type UnreadDelta struct {
	UserID, RoomID string
	ThreadCounts
}

// AddPushNotifications stores notifications and returns what they added
// to the unread counts. Those at or below the user's read mark (a
// receipt can overtake evaluation, which runs behind the events) are
// stored read and not counted.
func (db *DB) AddPushNotifications(ctx context.Context, ns []PushNotification) ([]UnreadDelta, error) {
	var deltas []UnreadDelta
	err := db.tx(ctx, func(c conn) error {
		deltas = deltas[:0]
		// Per event, the actions most recipients got are stored once.
		shared := map[int64]string{}
		votes := map[int64]map[string]int{}
		var events []any
		for _, n := range ns {
			v := votes[n.EventPos]
			if v == nil {
				v = map[string]int{}
				votes[n.EventPos] = v
				events = append(events, n.EventPos, n.RoomID, n.ThreadID, n.EventID, n.TS, "")
			}
			v[n.Actions]++
			if v[n.Actions] > v[shared[n.EventPos]] {
				shared[n.EventPos] = n.Actions
			}
		}
		for i := 0; i < len(events); i += 6 {
			events[i+5] = shared[events[i].(int64)]
		}
		if err := execRows(ctx, c, `INSERT INTO push_events (event_pos, room_id, thread_id, event_id, ts, actions) VALUES `, 6,
			` ON CONFLICT (event_pos) DO NOTHING`, events); err != nil {
			return err
		}
		if err := insertNotesRows(ctx, c, notesRows(ns, shared)); err != nil {
			return err
		}

		// The read marks that cover any of the notifications: a receipt
		// can overtake evaluation, which runs behind the events.
		type userRoom struct{ user, room string }
		type userThread struct{ user, room, thread string }
		type added struct{ notifs, highlights, first, counted int64 }
		lowest := map[string]int64{}
		for _, n := range ns {
			if low, ok := lowest[n.RoomID]; !ok || n.EventPos < low {
				lowest[n.RoomID] = n.EventPos
			}
		}
		marks := map[userRoom]readMarks{}
		for room, low := range lowest {
			byUser, err := readMarksBy(ctx, c, `SELECT user_id, thread_id, read_pos FROM push_read WHERE room_id = $1 AND read_pos >= $2`, room, low)
			if err != nil {
				return err
			}
			for user, m := range byUser {
				marks[userRoom{user, room}] = m
			}
		}
		counts := map[userThread]added{}
		var order []userThread
		for _, n := range ns {
			if n.EventPos <= marks[userRoom{n.UserID, n.RoomID}].of(n.ThreadID) {
				continue
			}
			t := userThread{n.UserID, n.RoomID, n.ThreadID}
			a, ok := counts[t]
			if !ok {
				order = append(order, t)
				a.first = n.EventPos
			}
			a.notifs++
			a.highlights += int64(boolInt(n.Highlight))
			a.first = min(a.first, n.EventPos)
			a.counted = max(a.counted, n.CountedPos)
			counts[t] = a
		}
		slices.SortFunc(order, func(a, b userThread) int {
			return cmp.Or(strings.Compare(a.user, b.user), strings.Compare(a.room, b.room), strings.Compare(a.thread, b.thread))
		})
		unread := make([]any, 0, 7*len(order))
		for _, t := range order {
			a := counts[t]
			unread = append(unread, t.user, t.room, t.thread, a.notifs, a.highlights, a.first, a.counted)
			deltas = append(deltas, UnreadDelta{UserID: t.user, RoomID: t.room,
				ThreadCounts: ThreadCounts{ThreadID: t.thread, Notifications: a.notifs, Highlights: a.highlights}})
		}
		return execRows(ctx, c, `INSERT INTO push_unread (user_id, room_id, thread_id, notifs, highlights, first_pos, counted_pos) VALUES `, 7,
			` ON CONFLICT (user_id, room_id, thread_id) DO UPDATE SET notifs = push_unread.notifs + excluded.notifs,
				highlights = push_unread.highlights + excluded.highlights, counted_pos = excluded.counted_pos,
				first_pos = CASE WHEN push_unread.notifs = 0 THEN excluded.first_pos ELSE push_unread.first_pos END`, unread)
	})
	if err != nil {
		return nil, err
	}
	return deltas, nil
}

// readMarks are a user's read marks in a room: per thread ("" the main
// timeline) and room-wide (allThreadsMark).
type readMarks map[string]int64

// of is the position up to which a thread's notifications are read.
func (m readMarks) of(thread string) int64 {
	return max(m[allThreadsMark], m[thread])
}

func loadReadMarks(ctx context.Context, c conn, userID, roomID string) (readMarks, error) {
	byRoom, err := readMarksBy(ctx, c, `SELECT room_id, thread_id, read_pos FROM push_read WHERE user_id = $1 AND room_id = $2`, userID, roomID)
	if err != nil {
		return nil, err
	}
	if m := byRoom[roomID]; m != nil {
		return m, nil
	}
	return readMarks{}, nil
}

// readMarksBy reads rows of (key, thread_id, read_pos) into each key's
// read marks (the key a user or a room, as the query groups them).
func readMarksBy(ctx context.Context, c conn, query string, args ...any) (map[string]readMarks, error) {
	rows, err := c.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]readMarks{}
	for rows.Next() {
		var key, thread string
		var pos int64
		if err := rows.Scan(&key, &thread, &pos); err != nil {
			return nil, err
		}
		if out[key] == nil {
			out[key] = readMarks{}
		}
		out[key][thread] = pos
	}
	return out, rows.Err()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ThreadCounts are a room thread's unread notification and highlight
// counts; ThreadID "" is the main timeline.
type ThreadCounts struct {
	ThreadID      string
	Notifications int64
	Highlights    int64
}

// UnreadPushCounts returns a user's unread notification counts in a
// room, per thread, from the counters kept beside the notifications.
func (db *DB) UnreadPushCounts(ctx context.Context, userID, roomID string) ([]ThreadCounts, error) {
	return collect(ctx, db.r(), func(scan func(...any) error) (ThreadCounts, error) {
		var t ThreadCounts
		err := scan(&t.ThreadID, &t.Notifications, &t.Highlights)
		return t, err
	}, `SELECT thread_id, notifs, highlights FROM push_unread
		WHERE user_id = $1 AND room_id = $2 AND notifs > 0`, userID, roomID)
}

// TotalUnreadPush counts a user's unread notifications in every room.
func (db *DB) TotalUnreadPush(ctx context.Context, userID string) (int64, error) {
	var n int64
	err := db.r().queryRow(ctx, `SELECT COALESCE(SUM(notifs), 0) FROM push_unread WHERE user_id = $1`, []any{userID}, &n)
	return n, err
}

// MarkPushRead moves a user's read mark in a room up to an event stream
// position: that of one thread ("" the main timeline), or the room-wide
// one when allThreads is set. The counters drop by the notifications
// that became read; it reports whether any did.
func (db *DB) MarkPushRead(ctx context.Context, userID, roomID, threadID string, allThreads bool, pos int64) (bool, error) {
	if allThreads {
		threadID = allThreadsMark
	}
	var changed bool
	err := db.tx(ctx, func(c conn) error {
		old, err := loadReadMarks(ctx, c, userID, roomID)
		if err != nil {
			return err
		}
		if pos <= old[threadID] {
			return nil // receipts may arrive out of order; marks only advance
		}
		if _, err := c.exec(ctx, `INSERT INTO push_read (user_id, room_id, thread_id, read_pos) VALUES ($1, $2, $3, $4)
			ON CONFLICT (user_id, room_id, thread_id) DO UPDATE SET read_pos = excluded.read_pos`, userID, roomID, threadID, pos); err != nil {
			return err
		}
		marks := maps.Clone(old)
		marks[threadID] = pos
		type counter struct {
			notifs, highlights, first int64
			dirty                     bool
		}
		counters := map[string]*counter{}
		from := int64(math.MaxInt64)
		rows, err := c.query(ctx, `SELECT thread_id, notifs, highlights, first_pos FROM push_unread
			WHERE user_id = $1 AND room_id = $2 AND notifs > 0`, userID, roomID)
		if err != nil {
			return err
		}
		for rows.Next() {
			var thread string
			var k counter
			if err := rows.Scan(&thread, &k.notifs, &k.highlights, &k.first); err != nil {
				rows.Close()
				return err
			}
			if threadID == allThreadsMark || thread == threadID {
				counters[thread] = &k
				from = min(from, k.first)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(counters) == 0 {
			return err
		}
		// The user's notifications in the room from the earliest unread
		// one the new mark can cover up to the mark: the key is by user
		// and a row's last position, and the range is what arrived since
		// the user last read this room.
		batches, err := collect(ctx, c, scanNotesRow, `SELECT `+notesRowColumns+` FROM push_user_batches
			WHERE user_id = $1 AND last_pos >= $2 AND last_pos < $3 AND first_pos <= $4 AND room_id = $5`,
			userID, from, spanEnd(pos), pos, roomID)
		if err != nil {
			return err
		}
		for _, r := range batches {
			k := counters[r.threadID]
			if k == nil {
				continue
			}
			for _, n := range r.notes {
				if n.pos < from || n.pos > pos || n.pos <= old.of(r.threadID) || n.pos > marks.of(r.threadID) {
					continue
				}
				k.notifs--
				if n.highlight {
					k.highlights--
				}
				k.dirty = true
			}
		}
		for thread, k := range counters {
			// Whatever is still unread lies above the thread's new mark.
			first := max(k.first, marks.of(thread)+1)
			if !k.dirty && first == k.first {
				continue
			}
			changed = changed || k.dirty
			if _, err := c.exec(ctx, `UPDATE push_unread SET notifs = $1, highlights = $2, first_pos = $3
				WHERE user_id = $4 AND room_id = $5 AND thread_id = $6`,
				max(k.notifs, 0), max(k.highlights, 0), first, userID, roomID, thread); err != nil {
				return err
			}
		}
		return nil
	})
	return changed, err
}

// PushNotifications lists a user's notifications newest first, those
// below the position before (0: from the newest), highlights only when
// asked.
func (db *DB) PushNotifications(ctx context.Context, userID string, before int64, limit int, onlyHighlight bool) ([]PushNotification, error) {
	if before <= 0 {
		before = math.MaxInt64
	}
	out := []PushNotification{}
	if limit <= 0 {
		return out, nil
	}
	r := db.r()
	var cands []PushNotification
	// Rows come newest last position first; those not yet read hold
	// positions below end only, so once limit candidates lie at or above
	// end, they are the newest.
	end, exhausted := spanEnd(before-1), false
	page := max(limit, notesPageMin)
	gather := func() error {
		for !exhausted {
			if above := countFunc(cands, func(n PushNotification) bool { return n.EventPos >= end }); above >= limit {
				return nil
			}
			rows, err := collect(ctx, r, scanNotesRow, `SELECT `+notesRowColumns+` FROM push_user_batches
				WHERE user_id = $1 AND last_pos < $2 AND first_pos < $3 ORDER BY last_pos DESC LIMIT $4`, userID, end, before, page)
			if err != nil {
				return err
			}
			for _, row := range rows {
				for _, n := range row.notes {
					if n.pos >= before || onlyHighlight && !n.highlight {
						continue
					}
					c := PushNotification{UserID: userID, RoomID: row.roomID, ThreadID: row.threadID, EventPos: n.pos, Highlight: n.highlight}
					if row.actions != nil {
						c.Actions = *row.actions
					}
					cands = append(cands, c)
				}
			}
			exhausted = len(rows) < page
			if len(rows) > 0 {
				end = rows[len(rows)-1].last
			}
		}
		return nil
	}
	// What every recipient shares is in push_events; a notification
	// whose row there is gone (pruned or purged) is not listed, as the
	// join did before notifications were packed.
	for {
		if err := gather(); err != nil {
			return nil, err
		}
		slices.SortFunc(cands, func(a, b PushNotification) int { return cmp.Compare(b.EventPos, a.EventPos) })
		top := cands[:min(limit, len(cands))]
		complete, err := db.completeNotifications(ctx, top)
		if err != nil {
			return nil, err
		}
		if complete == len(top) {
			out = top
			break
		}
		cands = slices.DeleteFunc(cands, func(n PushNotification) bool { return n.EventID == "" && n.EventPos >= top[len(top)-1].EventPos })
	}
	marks := map[string]readMarks{}
	for i, n := range out {
		m, ok := marks[n.RoomID]
		if !ok {
			var err error
			if m, err = loadReadMarks(ctx, r, userID, n.RoomID); err != nil {
				return nil, err
			}
			marks[n.RoomID] = m
		}
		out[i].Unread = n.EventPos > m.of(n.ThreadID)
	}
	return out, nil
}

// notesPageMin is the fewest rows PushNotifications reads at a time (a
// variable so that tests can make each row a page).
var notesPageMin = 32

// completeNotifications fills in the event, time and shared actions of
// notifications from push_events, leaving EventID "" where the row is
// gone, and returns how many it found.
func (db *DB) completeNotifications(ctx context.Context, ns []PushNotification) (int, error) {
	at := map[int64]int{}
	var args []any
	for i, n := range ns {
		if n.EventID == "" {
			at[n.EventPos] = i
			args = append(args, n.EventPos)
		}
	}
	for len(args) > 0 {
		k := min(len(args), 500)
		rows, err := db.r().query(ctx, `SELECT event_pos, event_id, ts, actions FROM push_events WHERE event_pos IN (`+placeholders(k, 1)+`)`, args[:k]...)
		if err != nil {
			return 0, err
		}
		for rows.Next() {
			var pos, ts int64
			var id, actions string
			if err := rows.Scan(&pos, &id, &ts, &actions); err != nil {
				rows.Close()
				return 0, err
			}
			n := &ns[at[pos]]
			n.EventID, n.TS = id, ts
			if n.Actions == "" {
				n.Actions = actions
			}
		}
		if err := rows.Close(); err != nil {
			return 0, err
		}
		args = args[k:]
	}
	return countFunc(ns, func(n PushNotification) bool { return n.EventID != "" }), nil
}

func countFunc[T any](s []T, f func(T) bool) int {
	n := 0
	for _, v := range s {
		if f(v) {
			n++
		}
	}
	return n
}

// PushCountsChanged lists the rooms where a user's unread counts last
// went up at positions in (after, upto]. A room whose counts went up
// again after upto is left out until a sync's range reaches that change.
func (db *DB) PushCountsChanged(ctx context.Context, userID string, after, upto int64) ([]string, error) {
	return db.r().strings(ctx, `SELECT room_id FROM push_unread
		WHERE user_id = $1 GROUP BY room_id HAVING MAX(counted_pos) > $2 AND MAX(counted_pos) <= $3`, userID, after, upto)
}

// Pusher is an HTTP pusher of a local user's device.
type Pusher struct {
	Localpart         string
	DeviceID          string
	AppID             string
	Pushkey           string
	Kind              string
	AppDisplayName    string
	DeviceDisplayName string
	ProfileTag        string
	Lang              string
	Data              string // JSON object
	PushkeyTS         int64  // milliseconds
}

// SetPusher creates or replaces a user's pusher for (app_id, pushkey);
// unless appendOthers, other users' pushers with the same app_id and
// pushkey go, as the spec's "append" describes.
func (db *DB) SetPusher(ctx context.Context, p Pusher, appendOthers bool) error {
	return db.tx(ctx, func(c conn) error {
		if !appendOthers {
			if _, err := c.exec(ctx, `DELETE FROM pushers WHERE app_id = $1 AND pushkey = $2 AND localpart <> $3`, p.AppID, p.Pushkey, p.Localpart); err != nil {
				return err
			}
		}
		_, err := c.exec(ctx, `INSERT INTO pushers (localpart, device_id, app_id, pushkey, kind, app_display_name, device_display_name, profile_tag, lang, data, pushkey_ts)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
			ON CONFLICT (localpart, app_id, pushkey) DO UPDATE SET device_id = excluded.device_id, kind = excluded.kind,
				app_display_name = excluded.app_display_name, device_display_name = excluded.device_display_name,
				profile_tag = excluded.profile_tag, lang = excluded.lang, data = excluded.data, pushkey_ts = excluded.pushkey_ts`,
			p.Localpart, p.DeviceID, p.AppID, p.Pushkey, p.Kind, p.AppDisplayName, p.DeviceDisplayName, p.ProfileTag, p.Lang, p.Data, p.PushkeyTS)
		return err
	})
}

// DeletePusher removes a user's pusher; removing an unknown one is no error.
func (db *DB) DeletePusher(ctx context.Context, localpart, appID, pushkey string) error {
	_, err := db.w().exec(ctx, `DELETE FROM pushers WHERE localpart = $1 AND app_id = $2 AND pushkey = $3`, localpart, appID, pushkey)
	return err
}

// Pushers lists a user's pushers.
func (db *DB) Pushers(ctx context.Context, localpart string) ([]Pusher, error) {
	return collect(ctx, db.r(), func(scan func(...any) error) (Pusher, error) {
		var p Pusher
		err := scan(&p.Localpart, &p.DeviceID, &p.AppID, &p.Pushkey, &p.Kind, &p.AppDisplayName, &p.DeviceDisplayName,
			&p.ProfileTag, &p.Lang, &p.Data, &p.PushkeyTS)
		return p, err
	}, `SELECT localpart, device_id, app_id, pushkey, kind, app_display_name, device_display_name, profile_tag, lang, data, pushkey_ts
		FROM pushers WHERE localpart = $1 ORDER BY app_id, pushkey`, localpart)
}

// PusherLocalparts lists the users with pushers.
func (db *DB) PusherLocalparts(ctx context.Context) ([]string, error) {
	return db.r().strings(ctx, `SELECT DISTINCT localpart FROM pushers`)
}

// PushPruneBounds turns the ages notifications are kept for into event
// stream positions: readUpto is the newest notifying event from before
// readBefore, allUpto the newest from before allBefore (milliseconds
// since the epoch; allBefore is the older). Each query reads only the
// rows on its side of the bound.
func (db *DB) PushPruneBounds(ctx context.Context, readBefore, allBefore int64) (readUpto, allUpto int64, err error) {
	err = db.r().queryRow(ctx, `SELECT event_pos FROM push_events WHERE ts < $1 ORDER BY event_pos DESC LIMIT 1`,
		[]any{readBefore}, &readUpto)
	if errors.Is(err, ErrNotFound) {
		return 0, 0, nil // nothing is old enough
	}
	if err != nil {
		return 0, 0, err
	}
	var first int64
	err = db.r().queryRow(ctx, `SELECT event_pos FROM push_events WHERE ts >= $1 ORDER BY event_pos LIMIT 1`,
		[]any{allBefore}, &first)
	switch {
	case errors.Is(err, ErrNotFound):
		return readUpto, readUpto, nil // everything is older than allBefore
	case err != nil:
		return 0, 0, err
	}
	return readUpto, min(first-1, readUpto), nil
}

// UserIDsAfter pages through local user IDs in order.
func (db *DB) UserIDsAfter(ctx context.Context, after string, limit int) ([]string, error) {
	return db.r().strings(ctx, `SELECT user_id FROM users WHERE user_id > $1 ORDER BY user_id LIMIT $2`, after, limit)
}

// PruneUserNotifications deletes a user's old notifications: read ones
// up to readUpto unless they highlight, and every one up to allUpto.
// Unread ones deleted stop counting; what they took off the counters
// is returned. It looks at up to limit rows of packed notifications
// whose last position is after after, and returns where to go on from
// (next), or done.
func (db *DB) PruneUserNotifications(ctx context.Context, userID string, after, readUpto, allUpto int64, limit int) (expired []UnreadDelta, deleted int, next int64, done bool, err error) {
	err = db.tx(ctx, func(c conn) error {
		expired, deleted, next, done = nil, 0, after, true
		bound := max(readUpto, allUpto)
		rows, err := collect(ctx, c, scanNotesRow, `SELECT `+notesRowColumns+` FROM push_user_batches
			WHERE user_id = $1 AND last_pos > $2 AND last_pos < $3 AND first_pos <= $4 ORDER BY last_pos LIMIT $5`,
			userID, after, spanEnd(bound), bound, limit)
		if err != nil || len(rows) == 0 {
			return err
		}
		next, done = rows[len(rows)-1].last, len(rows) < limit
		marks, err := readMarksBy(ctx, c, `SELECT room_id, thread_id, read_pos FROM push_read WHERE user_id = $1`, userID)
		if err != nil {
			return err
		}
		type roomThread struct{ room, thread string }
		lost := map[roomThread]*ThreadCounts{}
		for _, r := range rows {
			mark := marks[r.roomID].of(r.threadID)
			n, err := keepNotes(ctx, c, r, func(n packedNote) bool {
				read := n.pos <= mark
				switch {
				case n.pos > bound:
					return true
				case read && (!n.highlight || n.pos <= allUpto):
				case !read && n.pos <= allUpto:
					k := roomThread{r.roomID, r.threadID}
					if lost[k] == nil {
						lost[k] = &ThreadCounts{ThreadID: r.threadID}
					}
					lost[k].Notifications++
					if n.highlight {
						lost[k].Highlights++
					}
				default:
					return true
				}
				return false
			})
			if err != nil {
				return err
			}
			deleted += n
		}
		for k, t := range lost {
			if _, err := c.exec(ctx, `UPDATE push_unread SET
				notifs = CASE WHEN notifs > $1 THEN notifs - $1 ELSE 0 END,
				highlights = CASE WHEN highlights > $2 THEN highlights - $2 ELSE 0 END
				WHERE user_id = $3 AND room_id = $4 AND thread_id = $5`,
				t.Notifications, t.Highlights, userID, k.room, k.thread); err != nil {
				return err
			}
			expired = append(expired, UnreadDelta{UserID: userID, RoomID: k.room, ThreadCounts: *t})
		}
		return nil
	})
	return expired, deleted, next, done, err
}

// PrunePushEvents deletes the shared part of notifications up to
// allUpto, once PruneUserNotifications has deleted every user's, a
// thousand rows per transaction so that the writer is never held long.
func (db *DB) PrunePushEvents(ctx context.Context, allUpto int64) (int64, error) {
	var total int64
	for {
		res, err := db.w().exec(ctx, `DELETE FROM push_events WHERE event_pos IN
			(SELECT event_pos FROM push_events WHERE event_pos <= $1 ORDER BY event_pos LIMIT 1000)`, allUpto)
		if err != nil {
			return total, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, err
		}
		total += n
		if n < 1000 {
			return total, nil
		}
	}
}
