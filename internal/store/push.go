package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// PushNotification is an event a user's push rules notify about.
type PushNotification struct {
	ID         int64
	UserID     string
	RoomID     string
	ThreadID   string // "" for the main timeline
	EventID    string
	EventPos   int64
	CountedPos int64
	Actions    string
	Highlight  bool
	TS         int64
	Unread     bool
}

// pushBatch is how many notifications one INSERT carries (9 parameters
// a row stays far below either engine's limit).
const pushBatch = 100

// AddPushNotifications stores notifications, unread.
func (db *DB) AddPushNotifications(ctx context.Context, ns []PushNotification) error {
	// Multi-row inserts: a message in a big room notifies every member.
	// Their placeholders run in order, so SQLite binds them by position
	// (see sqlite.rewrite), which keeps 900-parameter statements cheap.
	return db.tx(ctx, func(c conn) error {
		type userRoom struct{ user, room string }
		type userThread struct{ user, room, thread string }
		latest := map[userRoom]int64{}
		added := map[userThread][2]int64{}
		for _, n := range ns {
			k := userRoom{n.UserID, n.RoomID}
			latest[k] = max(latest[k], n.CountedPos)
			t := userThread{n.UserID, n.RoomID, n.ThreadID}
			c := added[t]
			c[0]++
			if n.Highlight {
				c[1]++
			}
			added[t] = c
		}
		for len(ns) > 0 {
			batch := ns[:min(len(ns), pushBatch)]
			ns = ns[len(batch):]
			var q strings.Builder
			q.WriteString(`INSERT INTO push_notifications (user_id, room_id, thread_id, event_id, event_pos, counted_pos, actions, highlight, ts) VALUES `)
			args := make([]any, 0, 9*len(batch))
			for i, n := range batch {
				if i > 0 {
					q.WriteString(", ")
				}
				fmt.Fprintf(&q, "($%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d)", 9*i+1, 9*i+2, 9*i+3, 9*i+4, 9*i+5, 9*i+6, 9*i+7, 9*i+8, 9*i+9)
				args = append(args, n.UserID, n.RoomID, n.ThreadID, n.EventID, n.EventPos, n.CountedPos, n.Actions, boolInt(n.Highlight), n.TS)
			}
			if _, err := c.exec(ctx, q.String(), args...); err != nil {
				return err
			}
		}
		for k, pos := range latest {
			if _, err := c.exec(ctx, `INSERT INTO push_counts_changed (user_id, room_id, counted_pos) VALUES ($1, $2, $3)
				ON CONFLICT (user_id, room_id) DO UPDATE SET counted_pos = excluded.counted_pos`, k.user, k.room, pos); err != nil {
				return err
			}
		}
		for k, n := range added {
			if _, err := c.exec(ctx, `INSERT INTO push_unread (user_id, room_id, thread_id, notifs, highlights) VALUES ($1, $2, $3, $4, $5)
				ON CONFLICT (user_id, room_id, thread_id) DO UPDATE SET notifs = push_unread.notifs + excluded.notifs,
					highlights = push_unread.highlights + excluded.highlights`, k.user, k.room, k.thread, n[0], n[1]); err != nil {
				return err
			}
		}
		return nil
	})
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

// MarkPushRead marks a user's notifications in a room read up to an
// event stream position: those of one thread ("" the main timeline), or
// of every thread when allThreads is set, and recounts the room's
// counters. It reports whether any changed.
func (db *DB) MarkPushRead(ctx context.Context, userID, roomID, threadID string, allThreads bool, pos int64) (bool, error) {
	var changed bool
	err := db.tx(ctx, func(c conn) error {
		var res sql.Result
		var err error
		if allThreads {
			res, err = c.exec(ctx, `UPDATE push_notifications SET unread = 0
				WHERE user_id = $1 AND room_id = $2 AND unread = 1 AND event_pos <= $3`, userID, roomID, pos)
		} else {
			res, err = c.exec(ctx, `UPDATE push_notifications SET unread = 0
				WHERE user_id = $1 AND room_id = $2 AND unread = 1 AND event_pos <= $3 AND thread_id = $4`, userID, roomID, pos, threadID)
		}
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil || n == 0 {
			return err
		}
		changed = true
		// Receipts are rare next to syncs: recount here, once.
		if _, err := c.exec(ctx, `DELETE FROM push_unread WHERE user_id = $1 AND room_id = $2`, userID, roomID); err != nil {
			return err
		}
		_, err = c.exec(ctx, `INSERT INTO push_unread (user_id, room_id, thread_id, notifs, highlights)
			SELECT user_id, room_id, thread_id, COUNT(*), SUM(highlight) FROM push_notifications
			WHERE user_id = $1 AND room_id = $2 AND unread = 1 GROUP BY user_id, room_id, thread_id`, userID, roomID)
		return err
	})
	return changed, err
}

// PushNotifications lists a user's notifications newest first, those with
// IDs below before (0: from the newest), highlights only when asked.
func (db *DB) PushNotifications(ctx context.Context, userID string, before int64, limit int, onlyHighlight bool) ([]PushNotification, error) {
	if before <= 0 {
		before = 1 << 62
	}
	q := `SELECT notif_id, user_id, room_id, thread_id, event_id, event_pos, counted_pos, actions, highlight, ts, unread
		FROM push_notifications WHERE user_id = $1 AND notif_id < $2`
	if onlyHighlight {
		q += ` AND highlight = 1`
	}
	return collect(ctx, db.r(), func(scan func(...any) error) (PushNotification, error) {
		var n PushNotification
		var hl, unread int
		err := scan(&n.ID, &n.UserID, &n.RoomID, &n.ThreadID, &n.EventID, &n.EventPos, &n.CountedPos, &n.Actions, &hl, &n.TS, &unread)
		n.Highlight, n.Unread = hl == 1, unread == 1
		return n, err
	}, q+` ORDER BY notif_id DESC LIMIT $3`, userID, before, limit)
}

// PushCountsChanged lists the rooms where notifications for a user were
// last stored at positions in (after, upto]. A room whose counts changed
// again after upto is left out until a sync's range reaches that change.
func (db *DB) PushCountsChanged(ctx context.Context, userID string, after, upto int64) ([]string, error) {
	return db.r().strings(ctx, `SELECT room_id FROM push_counts_changed
		WHERE user_id = $1 AND counted_pos > $2 AND counted_pos <= $3`, userID, after, upto)
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

// Report is a user's report of an event, a room or a user.
type Report struct {
	Reporter     string
	RoomID       string
	EventID      string
	TargetUserID string
	Reason       string
	Score        *int64
	ReceivedTS   int64
}

// AddReport stores a report.
func (db *DB) AddReport(ctx context.Context, r Report) error {
	_, err := db.w().exec(ctx, `INSERT INTO content_reports (reporter, room_id, event_id, target_user_id, reason, score, received_ts)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, r.Reporter, r.RoomID, r.EventID, r.TargetUserID, r.Reason, r.Score, r.ReceivedTS)
	return err
}

// Reports lists stored reports, oldest first (for admins and tests).
func (db *DB) Reports(ctx context.Context) ([]Report, error) {
	return collect(ctx, db.r(), func(scan func(...any) error) (Report, error) {
		var r Report
		var score sql.NullInt64
		err := scan(&r.Reporter, &r.RoomID, &r.EventID, &r.TargetUserID, &r.Reason, &score, &r.ReceivedTS)
		if score.Valid {
			r.Score = &score.Int64
		}
		return r, err
	}, `SELECT reporter, room_id, event_id, target_user_id, reason, score, received_ts FROM content_reports ORDER BY report_id`)
}

// PusherLocalparts lists the users with pushers.
func (db *DB) PusherLocalparts(ctx context.Context) ([]string, error) {
	return db.r().strings(ctx, `SELECT DISTINCT localpart FROM pushers`)
}
