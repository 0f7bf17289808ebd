package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"slices"

	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
)

// batchRooms bounds the room IDs bound in one query.
const batchRooms = 500

// LastPosOfTypesIn is, for each of many rooms, the stream position of
// its last accepted event at or before upto whose type is one of types:
// sliding sync's bump_stamp. One query per batchRooms rooms; rooms
// without such an event are left out.
func (db *DB) LastPosOfTypesIn(ctx context.Context, roomIDs, types []string, upto int64) (map[string]int64, error) {
	lead := []any{upto}
	for _, t := range types {
		lead = append(lead, t)
	}
	return db.perRoomInt64(ctx, roomIDs, lead, func(n int) string {
		return `SELECT room_id, MAX(stream_pos) FROM events WHERE stream_pos <= $1 AND status = 0
			AND type IN (` + placeholders(len(types), 2) + `) AND room_id IN (` + placeholders(n, 2+len(types)) + `) GROUP BY room_id`
	})
}

// CurrentStateNIDsIn is the event NID of one state key in the current
// state of each of many rooms (rooms without it are left out).
func (db *DB) CurrentStateNIDsIn(ctx context.Context, roomIDs []string, typ, stateKey string) (map[string]int64, error) {
	return db.perRoomInt64(ctx, roomIDs, []any{typ, stateKey}, func(n int) string {
		return `SELECT room_id, event_nid FROM current_state WHERE type = $1 AND state_key = $2
			AND room_id IN (` + placeholders(n, 3) + `)`
	})
}

// perRoomInt64 runs a query answering (room_id, number) rows for many
// rooms, batchRooms at a time: query(n) is the SQL for n rooms, whose
// room placeholders follow the lead arguments.
func (db *DB) perRoomInt64(ctx context.Context, roomIDs []string, lead []any, query func(n int) string) (map[string]int64, error) {
	out := make(map[string]int64, len(roomIDs))
	for len(roomIDs) > 0 {
		n := min(len(roomIDs), batchRooms)
		args := append([]any(nil), lead...)
		for _, r := range roomIDs[:n] {
			args = append(args, r)
		}
		rows, err := db.r().query(ctx, query(n), args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id string
			var v int64
			if err := rows.Scan(&id, &v); err != nil {
				rows.Close()
				return nil, err
			}
			out[id] = v
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
		roomIDs = roomIDs[n:]
	}
	return out, nil
}

// RoomListBumpTypes are the event types that move a room up a sliding
// sync room list, as in Synapse (SLIDING_SYNC_DEFAULT_BUMP_EVENT_TYPES):
// messages and the like, not state changes or reactions. The store
// keeps sliding_sync_room_meta.bump_stamp with them as events are persisted.
var RoomListBumpTypes = []string{"m.room.create", "m.room.message", "m.room.encrypted", "m.sticker", "m.call.invite",
	"m.poll.start", "m.beacon_info"}

var roomListBump = func() map[string]bool {
	m := map[string]bool{}
	for _, t := range RoomListBumpTypes {
		m[t] = true
	}
	return m
}()

// RoomListEntry is a room's row of sliding_sync_room_meta: its bump stamp, and its
// type once Typed.
type RoomListEntry struct {
	BumpStamp int64
	Typed     bool
	RoomType  *string
}

// touchRoomList raises the bump stamp of the rooms of accepted
// timeline events of a bump type, and records the type of rooms whose
// create event is among them, in the transaction storing the events:
// one statement for a run of events, whatever their rooms.
func touchRoomList(ctx context.Context, c conn, rows []EventRow) error {
	var args []any
	seen := map[string]int{}
	for _, r := range rows {
		if r.Status != roommodel.Accepted || r.StreamPos <= 0 || !roomListBump[r.Type] {
			continue
		}
		var typ any
		typed := false
		if r.Type == "m.room.create" && r.StateKey != nil && *r.StateKey == "" {
			typed = true
			if t := createContentType([]byte(r.JSON)); t != nil {
				typ = *t
			}
		}
		if i, ok := seen[r.RoomID]; ok {
			// Several in one run: the last one's position, keeping a
			// type learnt from an earlier one.
			args[i+1] = max(args[i+1].(int64), r.StreamPos)
			if typed {
				args[i+2], args[i+3] = true, typ
			}
			continue
		}
		seen[r.RoomID] = len(args)
		args = append(args, r.RoomID, r.StreamPos, typed, typ)
	}
	return execRows(ctx, c, `INSERT INTO sliding_sync_room_meta (room_id, bump_stamp, typed, room_type) VALUES `, 4,
		` ON CONFLICT (room_id) DO UPDATE SET
			bump_stamp = CASE WHEN excluded.bump_stamp > sliding_sync_room_meta.bump_stamp THEN excluded.bump_stamp ELSE sliding_sync_room_meta.bump_stamp END,
			typed = CASE WHEN excluded.typed THEN TRUE ELSE sliding_sync_room_meta.typed END,
			room_type = CASE WHEN excluded.typed THEN excluded.room_type ELSE sliding_sync_room_meta.room_type END`, args)
}

// createContentType is the content.type of a create event's JSON (nil:
// none, or not a string).
func createContentType(raw []byte) *string {
	var ev struct {
		Content struct {
			Type any `json:"type"`
		} `json:"content"`
	}
	if json.Unmarshal(raw, &ev) != nil {
		return nil
	}
	if s, ok := ev.Content.Type.(string); ok {
		return &s
	}
	return nil
}

// RoomListEntries reads the sliding_sync_room_meta rows of many rooms (rooms without
// one are left out), batchRooms rooms a query.
func (db *DB) RoomListEntries(ctx context.Context, roomIDs []string) (map[string]RoomListEntry, error) {
	out := make(map[string]RoomListEntry, len(roomIDs))
	for len(roomIDs) > 0 {
		n := min(len(roomIDs), batchRooms)
		args := make([]any, n)
		for i, r := range roomIDs[:n] {
			args[i] = r
		}
		_, err := collect(ctx, db.r(), func(scan func(...any) error) (struct{}, error) {
			var id string
			var e RoomListEntry
			var typ sql.NullString
			if err := scan(&id, &e.BumpStamp, &e.Typed, &typ); err != nil {
				return struct{}{}, err
			}
			if typ.Valid {
				e.RoomType = &typ.String
			}
			out[id] = e
			return struct{}{}, nil
		}, `SELECT room_id, bump_stamp, typed, room_type FROM sliding_sync_room_meta WHERE room_id IN (`+placeholders(n, 1)+`)`, args...)
		if err != nil {
			return nil, err
		}
		roomIDs = roomIDs[n:]
	}
	return out, nil
}

// FillRoomList stores what was computed for rooms without a complete
// sliding_sync_room_meta row: a bump stamp only raises the stored one (an event
// persisted meanwhile may have raised it further), a type is set once.
func (db *DB) FillRoomList(ctx context.Context, entries map[string]RoomListEntry) error {
	if len(entries) == 0 {
		return nil
	}
	ids := make([]string, 0, len(entries))
	for id := range entries {
		ids = append(ids, id)
	}
	slices.Sort(ids) // a stable lock order between concurrent writers
	args := make([]any, 0, 4*len(ids))
	for _, id := range ids {
		e := entries[id]
		var typ any
		if e.RoomType != nil {
			typ = *e.RoomType
		}
		args = append(args, id, e.BumpStamp, e.Typed, typ)
	}
	return execRows(ctx, db.w(), `INSERT INTO sliding_sync_room_meta (room_id, bump_stamp, typed, room_type) VALUES `, 4,
		` ON CONFLICT (room_id) DO UPDATE SET
			bump_stamp = CASE WHEN excluded.bump_stamp > sliding_sync_room_meta.bump_stamp THEN excluded.bump_stamp ELSE sliding_sync_room_meta.bump_stamp END,
			typed = CASE WHEN excluded.typed THEN TRUE ELSE sliding_sync_room_meta.typed END,
			room_type = CASE WHEN excluded.typed AND NOT sliding_sync_room_meta.typed THEN excluded.room_type ELSE sliding_sync_room_meta.room_type END`, args)
}

// SlidingConn is a sliding sync connection's stored position.
type SlidingConn struct {
	Token      string
	Seq, Upto  int64
	Extra      string
	LastUsedTS int64
}

// SlidingConnection reads a connection and what it was sent of each
// room (room ID -> encoded data); ErrNotFound when none is stored.
func (db *DB) SlidingConnection(ctx context.Context, userID, deviceID, connID string) (SlidingConn, map[string]string, error) {
	var c SlidingConn
	err := db.r().queryRow(ctx, `SELECT token, seq, upto, extra, last_used_ts FROM sliding_sync_connections
		WHERE user_id = $1 AND device_id = $2 AND conn_id = $3`, []any{userID, deviceID, connID},
		&c.Token, &c.Seq, &c.Upto, &c.Extra, &c.LastUsedTS)
	if err != nil {
		return c, nil, err
	}
	rooms := map[string]string{}
	_, err = collect(ctx, db.r(), func(scan func(...any) error) (struct{}, error) {
		var id, data string
		err := scan(&id, &data)
		rooms[id] = data
		return struct{}{}, err
	}, `SELECT room_id, data FROM sliding_sync_rooms WHERE token = $1`, c.Token)
	return c, rooms, err
}

// SlidingConnWrite is what changed in a connection since its last
// write: its new position, and the rooms whose data changed or that it
// no longer has.
type SlidingConnWrite struct {
	UserID, DeviceID, ConnID string
	SlidingConn
	// Fresh replaces whatever was stored for the key (a connection
	// started over): the old token's rooms go.
	Fresh bool
	// Drop deletes the connection instead (it grew past what is kept).
	Drop  bool
	Rooms map[string]string
	Gone  []string
}

// WriteSlidingConnections applies writes, in order, in one transaction.
func (db *DB) WriteSlidingConnections(ctx context.Context, ws []SlidingConnWrite) error {
	return db.tx(ctx, func(c conn) error {
		for _, w := range ws {
			key := []any{w.UserID, w.DeviceID, w.ConnID}
			if w.Fresh || w.Drop {
				if _, err := c.exec(ctx, `DELETE FROM sliding_sync_rooms WHERE token IN (SELECT token FROM sliding_sync_connections
					WHERE user_id = $1 AND device_id = $2 AND conn_id = $3)`, key...); err != nil {
					return err
				}
			}
			if w.Drop {
				if _, err := c.exec(ctx, `DELETE FROM sliding_sync_connections WHERE user_id = $1 AND device_id = $2 AND conn_id = $3`, key...); err != nil {
					return err
				}
				continue
			}
			if _, err := c.exec(ctx, `INSERT INTO sliding_sync_connections (user_id, device_id, conn_id, token, seq, upto, extra, last_used_ts)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (user_id, device_id, conn_id) DO UPDATE SET token = excluded.token,
				seq = excluded.seq, upto = excluded.upto, extra = excluded.extra, last_used_ts = excluded.last_used_ts`,
				w.UserID, w.DeviceID, w.ConnID, w.Token, w.Seq, w.Upto, w.Extra, w.LastUsedTS); err != nil {
				return err
			}
			gone := make([]any, 0, len(w.Gone))
			for _, id := range w.Gone {
				gone = append(gone, id)
			}
			for len(gone) > 0 {
				n := chunkSize(len(gone))
				if _, err := c.exec(ctx, `DELETE FROM sliding_sync_rooms WHERE token = $1 AND room_id IN (`+placeholders(n, 2)+`)`,
					append([]any{w.Token}, gone[:n]...)...); err != nil {
					return err
				}
				gone = gone[n:]
			}
			ids := make([]string, 0, len(w.Rooms))
			for id := range w.Rooms {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			args := make([]any, 0, 3*len(ids))
			for _, id := range ids {
				args = append(args, w.Token, id, w.Rooms[id])
			}
			if err := execRows(ctx, c, `INSERT INTO sliding_sync_rooms (token, room_id, data) VALUES `, 3,
				` ON CONFLICT (token, room_id) DO UPDATE SET data = excluded.data`, args); err != nil {
				return err
			}
		}
		return nil
	})
}

// deleteSlidingConnections deletes the connections of devices of a user
// (all of them when deviceIDs is nil), and their rooms.
func deleteSlidingConnections(ctx context.Context, c conn, userID string, deviceIDs []string) error {
	del := func(where string, args ...any) error {
		if _, err := c.exec(ctx, `DELETE FROM sliding_sync_rooms WHERE token IN (SELECT token FROM sliding_sync_connections
			WHERE `+where+`)`, args...); err != nil {
			return err
		}
		_, err := c.exec(ctx, `DELETE FROM sliding_sync_connections WHERE `+where, args...)
		return err
	}
	if deviceIDs == nil {
		return del(`user_id = $1`, userID)
	}
	for _, d := range deviceIDs {
		if err := del(`user_id = $1 AND device_id = $2`, userID, d); err != nil {
			return err
		}
	}
	return nil
}

// ExpireSlidingConnections deletes the connections last used before
// beforeTS, and their rooms.
func (db *DB) ExpireSlidingConnections(ctx context.Context, beforeTS int64) error {
	return db.tx(ctx, func(c conn) error {
		if _, err := c.exec(ctx, `DELETE FROM sliding_sync_rooms WHERE token IN (SELECT token FROM sliding_sync_connections
			WHERE last_used_ts < $1)`, beforeTS); err != nil {
			return err
		}
		_, err := c.exec(ctx, `DELETE FROM sliding_sync_connections WHERE last_used_ts < $1`, beforeTS)
		return err
	})
}
