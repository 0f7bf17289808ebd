package store

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
)

// What the admin API's room endpoints (Synapse's /_synapse/admin/v1/rooms
// family) read and change: per-room figures, blocked rooms, and the purge
// of a room from the database.

// AdminRoom is a room as the admin room list shows it: its figures and
// the JSON of the current state events the list describes (by type, state
// key "").
type AdminRoom struct {
	RoomID      string
	Version     string
	Published   bool
	StateEvents int64
	Joined      int64
	LocalJoined int64
	// State is the JSON of the room's current m.room.create, name,
	// canonical_alias, topic, avatar, encryption, join_rules,
	// guest_access and history_visibility events, by type.
	State map[string]string
}

// adminStateTypes are the state events the admin room list describes.
var adminStateTypes = []any{"m.room.create", "m.room.name", "m.room.canonical_alias", "m.room.topic", "m.room.avatar",
	"m.room.encryption", "m.room.join_rules", "m.room.guest_access", "m.room.history_visibility"}

// AdminRooms lists every room the server knows with its figures; roomID
// "" lists all, otherwise just that one (none if unknown). localSuffix is
// ":" + the server name, which tells local members.
func (db *DB) AdminRooms(ctx context.Context, roomID, localSuffix string) ([]AdminRoom, error) {
	where, args := ``, []any{"%" + likeEscaper.Replace(localSuffix)}
	if roomID != "" {
		where, args = ` WHERE r.room_id = $2`, append(args, roomID)
	}
	list, err := collect(ctx, db.r(), func(scan func(...any) error) (AdminRoom, error) {
		var r AdminRoom
		err := scan(&r.RoomID, &r.Version, &r.Published, &r.StateEvents, &r.Joined, &r.LocalJoined)
		return r, err
	}, `SELECT r.room_id, r.room_version, r.published,
		(SELECT COUNT(*) FROM current_state cs WHERE cs.room_id = r.room_id),
		(SELECT COUNT(*) FROM current_state cs WHERE cs.room_id = r.room_id AND cs.type = 'm.room.member' AND cs.membership = 'join'),
		(SELECT COUNT(*) FROM current_state cs WHERE cs.room_id = r.room_id AND cs.type = 'm.room.member' AND cs.membership = 'join'
			AND cs.state_key LIKE $1 ESCAPE '\')
		FROM rooms r`+where, args...)
	if err != nil || len(list) == 0 {
		return list, err
	}
	byID := make(map[string]*AdminRoom, len(list))
	for i := range list {
		list[i].State = map[string]string{}
		byID[list[i].RoomID] = &list[i]
	}
	stateArgs := append([]any(nil), adminStateTypes...)
	stateWhere := ``
	if roomID != "" {
		stateArgs = append(stateArgs, roomID)
		stateWhere = ` AND cs.room_id = $` + strconv.Itoa(len(stateArgs))
	}
	type stateRow struct{ roomID, typ, json string }
	rows, err := collect(ctx, db.r(), func(scan func(...any) error) (stateRow, error) {
		var s stateRow
		err := scan(&s.roomID, &s.typ, &s.json)
		return s, err
	}, `SELECT cs.room_id, cs.type, e.json FROM current_state cs JOIN events e ON e.event_nid = cs.event_nid
		WHERE cs.state_key = '' AND cs.type IN (`+placeholders(len(adminStateTypes), 1)+`)`+stateWhere, stateArgs...)
	if err != nil {
		return nil, err
	}
	for _, s := range rows {
		if r := byID[s.roomID]; r != nil {
			r.State[s.typ] = s.json
		}
	}
	return list, nil
}

// LocalJoinedDevices counts the devices of a room's joined local users
// (Synapse's joined_local_devices).
func (db *DB) LocalJoinedDevices(ctx context.Context, roomID string) (int64, error) {
	var n int64
	err := db.r().queryRow(ctx, `SELECT COUNT(*) FROM current_state cs JOIN users u ON u.user_id = cs.state_key
		JOIN devices d ON d.localpart = u.localpart
		WHERE cs.room_id = $1 AND cs.type = 'm.room.member' AND cs.membership = 'join'`, []any{roomID}, &n)
	return n, err
}

// LocallyForgotten reports whether every local user with a membership
// in the room has forgotten it (Synapse's is_locally_forgotten_room);
// true when no local user has one.
func (db *DB) LocallyForgotten(ctx context.Context, roomID, localSuffix string) (bool, error) {
	var n int64
	err := db.r().queryRow(ctx, `SELECT COUNT(*) FROM current_state cs
		WHERE cs.room_id = $1 AND cs.type = 'm.room.member' AND cs.state_key LIKE $2 ESCAPE '\'
		AND NOT EXISTS (SELECT 1 FROM forgotten_rooms f WHERE f.user_id = cs.state_key AND f.room_id = cs.room_id)`,
		[]any{roomID, "%" + likeEscaper.Replace(localSuffix)}, &n)
	return n == 0, err
}

// BlockRoom blocks a room (again), noting which admin did.
func (db *DB) BlockRoom(ctx context.Context, roomID, by string) error {
	_, err := db.w().exec(ctx, `INSERT INTO blocked_rooms (room_id, blocked_by) VALUES ($1, $2)
		ON CONFLICT (room_id) DO UPDATE SET blocked_by = excluded.blocked_by`, roomID, by)
	return err
}

// UnblockRoom lifts a block; unblocking a room that is not blocked does
// nothing.
func (db *DB) UnblockRoom(ctx context.Context, roomID string) error {
	_, err := db.w().exec(ctx, `DELETE FROM blocked_rooms WHERE room_id = $1`, roomID)
	return err
}

// RoomBlocked reports whether a room is blocked and by whom.
func (db *DB) RoomBlocked(ctx context.Context, roomID string) (by string, blocked bool, err error) {
	err = db.r().queryRow(ctx, `SELECT blocked_by FROM blocked_rooms WHERE room_id = $1`, []any{roomID}, &by)
	if errors.Is(err, ErrNotFound) || errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	return by, err == nil, err
}

// PurgedRoom is what PurgeRoom removed that the room engine may hold in
// its caches.
type PurgedRoom struct {
	EventNIDs []int64
	EventIDs  []string
	Snapshots []int64
}

// roomTables are the tables with a room_id column whose rows PurgeRoom
// removes, besides those it clears by event or snapshot first. Every
// table with a room_id column is here or in PurgeKeptTables
// (TestPurgeRoomCoversEveryTable checks the schema).
var roomTables = []string{
	"forward_extremities", "current_state", "room_heads", "room_aliases", "forgotten_rooms",
	"federation_queue_pdus", "key_backup_sessions", "account_data", "push_events", "push_user_batches", "push_read", "push_unread",
	"receipts", "search_events", "partial_state_rooms", "delayed_events", "thread_subscriptions",
	"partial_state_completed", "federation_destination_rooms", "appservice_room_list", "awaited_redactions", "history_gaps",
	"state_snapshots", "events", "rooms",
	// Sliding sync (issue 18): the room's list row, and what connections
	// were sent of it (a connection then sends the room again if it comes
	// back).
	"sliding_sync_room_meta", "sliding_sync_rooms",
}

// PurgeKeptTables are the tables with a room_id column that a purge
// keeps, as Synapse's purge_room does: the block, so that the room is
// not joined again, and the reports, which are for abuse management and
// stay in the admins' inbox. A reputation feed's subscription is the
// admin's setting, not the room's content: it stays too, and the feed
// is joined again at its next retry. Which rooms media was posted in
// (media_rooms) stays as the media does (a purge deletes no media, as
// Synapse's): a feed that lists the room keeps its media taken down.
var PurgeKeptTables = []string{"blocked_rooms", "content_reports", "reputation_feeds", "media_rooms"}

// PurgeRoomTables lists the tables PurgeRoom clears by room_id (for the
// schema check in tests).
func PurgeRoomTables() []string { return append([]string(nil), roomTables...) }

// PurgeRoom removes a room from the database in one transaction: its
// events, state, heads, aliases, receipts, notifications, search index,
// federation queue, key backups and account data of the room, and
// partial-state marks (Synapse's purge_room). The block and the reports
// stay. The room engine calls it under the room's lock (rooms.Engine.Purge).
func (db *DB) PurgeRoom(ctx context.Context, roomID string) (PurgedRoom, error) {
	var p PurgedRoom
	err := db.tx(ctx, func(c conn) error {
		p = PurgedRoom{}
		if err := p.collectEvents(ctx, c, `SELECT event_nid, event_id FROM events WHERE room_id = $1`, roomID); err != nil {
			return err
		}
		var err error
		if p.Snapshots, err = int64s(ctx, c, `SELECT snapshot_id FROM state_snapshots WHERE room_id = $1`, roomID); err != nil {
			return err
		}
		// Rows keyed by snapshot rather than room go first, while the
		// snapshots that name their room are still there.
		if _, err := c.exec(ctx, `DELETE FROM state_snapshot_entries WHERE snapshot_id IN (SELECT snapshot_id FROM state_snapshots WHERE room_id = $1)`, roomID); err != nil {
			return err
		}
		for _, t := range roomTables {
			if _, err := c.exec(ctx, `DELETE FROM `+t+` WHERE room_id = $1`, roomID); err != nil {
				return err
			}
		}
		return nil
	})
	return p, err
}

// collectEvents appends the (event_nid, event_id) rows of query to p, so
// that the caller can drop their caches once the purge commits.
func (p *PurgedRoom) collectEvents(ctx context.Context, c conn, query string, args ...any) error {
	rows, err := c.query(ctx, query, args...)
	if err != nil {
		return err
	}
	for rows.Next() {
		var nid int64
		var id string
		if err := rows.Scan(&nid, &id); err != nil {
			rows.Close()
			return err
		}
		p.EventNIDs, p.EventIDs = append(p.EventNIDs, nid), append(p.EventIDs, id)
	}
	return rows.Close()
}

func int64s(ctx context.Context, c conn, query string, args ...any) ([]int64, error) {
	return collect(ctx, c, func(scan func(...any) error) (int64, error) {
		var n int64
		err := scan(&n)
		return n, err
	}, query, args...)
}

// PurgeHistory removes a room's timeline events before stream position
// before (Synapse's purge history API), with their search index and
// notification rows, in one transaction. State events stay (the room's
// state snapshots hold them), and so do the forward extremities, events
// another event edits, and, when localSuffix is not "", the events of
// local senders (Synapse keeps them unless delete_local_events).
func (db *DB) PurgeHistory(ctx context.Context, roomID string, before int64, localSuffix string) (PurgedRoom, error) {
	cond := `room_id = $1 AND stream_pos IS NOT NULL AND stream_pos < $2 AND state_key IS NULL
		AND event_id NOT IN (SELECT f.event_id FROM forward_extremities f WHERE f.room_id = $1)
		AND event_nid NOT IN (SELECT r.replaces_nid FROM events r WHERE r.room_id = $1 AND r.replaces_nid <> 0)`
	args := []any{roomID, before}
	if localSuffix != "" {
		cond += ` AND sender NOT LIKE $3 ESCAPE '\'`
		args = append(args, "%"+likeEscaper.Replace(localSuffix))
	}
	var p PurgedRoom
	err := db.tx(ctx, func(c conn) error {
		p = PurgedRoom{}
		if err := p.collectEvents(ctx, c, `SELECT event_nid, event_id FROM events WHERE `+cond, args...); err != nil {
			return err
		}
		if err := purgeNotifications(ctx, c, roomID, `SELECT event_pos FROM push_events
			WHERE event_id IN (SELECT event_id FROM events WHERE `+cond+`)`, args...); err != nil {
			return err
		}
		for _, q := range []string{
			`DELETE FROM push_events WHERE event_id IN (SELECT event_id FROM events WHERE ` + cond + `)`,
			`DELETE FROM search_events WHERE event_nid IN (SELECT event_nid FROM events WHERE ` + cond + `)`,
			`DELETE FROM events WHERE event_nid IN (SELECT event_nid FROM events WHERE ` + cond + `)`,
		} {
			if _, err := c.exec(ctx, q, args...); err != nil {
				return err
			}
		}
		return nil
	})
	return p, err
}
