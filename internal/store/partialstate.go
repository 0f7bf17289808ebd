package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"sync/atomic"

	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
)

// PartialStateRoom is a room joined with partial state whose full state
// is still to be fetched (see migration 0022).
type PartialStateRoom struct {
	RoomID      string
	JoinEventID string
	// Servers are the servers in the room the resident server named.
	Servers []string
}

// MarkPartialState records that a room's state is partial until
// CompletePartialState.
func (db *DB) MarkPartialState(ctx context.Context, r PartialStateRoom) error {
	servers, err := json.Marshal(r.Servers)
	if err != nil {
		return err
	}
	_, err = db.w().exec(ctx, `INSERT INTO partial_state_rooms (room_id, join_event_id, servers) VALUES ($1, $2, $3)
		ON CONFLICT (room_id) DO UPDATE SET join_event_id = excluded.join_event_id, servers = excluded.servers`,
		r.RoomID, r.JoinEventID, string(servers))
	return err
}

// ClearPartialState forgets a room's partial-state mark (a join that
// failed after it was set).
func (db *DB) ClearPartialState(ctx context.Context, roomID string) error {
	_, err := db.w().exec(ctx, `DELETE FROM partial_state_rooms WHERE room_id = $1`, roomID)
	return err
}

// PartialStateRooms lists the rooms whose state is partial.
func (db *DB) PartialStateRooms(ctx context.Context) ([]PartialStateRoom, error) {
	return collect(ctx, db.r(), scanPartialState, `SELECT room_id, join_event_id, servers FROM partial_state_rooms ORDER BY room_id`)
}

// PartialState returns a room's partial-state mark; ErrNotFound when its
// state is complete.
func (db *DB) PartialState(ctx context.Context, roomID string) (PartialStateRoom, error) {
	rows, err := collect(ctx, db.r(), scanPartialState, `SELECT room_id, join_event_id, servers FROM partial_state_rooms WHERE room_id = $1`, roomID)
	if err != nil {
		return PartialStateRoom{}, err
	}
	if len(rows) == 0 {
		return PartialStateRoom{}, ErrNotFound
	}
	return rows[0], nil
}

func scanPartialState(scan func(...any) error) (PartialStateRoom, error) {
	var r PartialStateRoom
	var servers string
	if err := scan(&r.RoomID, &r.JoinEventID, &servers); err != nil {
		return r, err
	}
	// Written by MarkPartialState only; an unreadable list names no server.
	_ = json.Unmarshal([]byte(servers), &r.Servers)
	return r, nil
}

// CompletePartialState adds the state a partial-state join lacked to
// the room, in one transaction, and clears the room's mark. Every root
// snapshot of the room (stored whole, parent 0) gains the missing
// entries it does not hold: snapshots stored as deltas inherit them
// from their root, and a key some later event set is held by the
// snapshots after it and left alone. The current state gains them the
// same way; memberships gives the membership of m.room.member entries.
// The completion is recorded at stream position pos (see migration 0023).
// It returns the room's snapshot IDs, whose cached states are now stale.
func (db *DB) CompletePartialState(ctx context.Context, roomID string, pos int64, missing map[roommodel.StateKey]int64, memberships map[string]string) ([]int64, error) {
	var snapshots []int64
	err := db.tx(ctx, func(c conn) error {
		roots, err := collect(ctx, c, one[int64], `SELECT snapshot_id FROM state_snapshots WHERE room_id = $1 AND parent_id = 0`, roomID)
		if err != nil {
			return err
		}
		// Tens of thousands of keys in a big room: inserted many rows
		// to a statement (insertMany).
		var entries, current [][]any
		for k, nid := range missing {
			for _, root := range roots {
				entries = append(entries, []any{root, k.Type, k.StateKey, nid})
			}
			var membership *string
			if m, ok := memberships[k.StateKey]; ok && k.Type == "m.room.member" {
				membership = &m
			}
			current = append(current, []any{roomID, k.Type, k.StateKey, nid, membership})
		}
		if err := insertMany(ctx, c, `INSERT INTO state_snapshot_entries (snapshot_id, type, state_key, event_nid)`,
			`ON CONFLICT (snapshot_id, type, state_key) DO NOTHING`, 4, entries); err != nil {
			return err
		}
		if err := insertMany(ctx, c, `INSERT INTO current_state (room_id, type, state_key, event_nid, membership)`,
			`ON CONFLICT (room_id, type, state_key) DO NOTHING`, 5, current); err != nil {
			return err
		}
		if _, err := c.exec(ctx, `DELETE FROM partial_state_rooms WHERE room_id = $1`, roomID); err != nil {
			return err
		}
		// Raised before the row can be read: a bound too high only costs
		// PartialStateCompleted a query.
		db.completedUpTo.raise(pos)
		if _, err := c.exec(ctx, `INSERT INTO partial_state_completed (room_id, stream_pos) VALUES ($1, $2)`, roomID, pos); err != nil {
			return err
		}
		snapshots, err = collect(ctx, c, one[int64], `SELECT snapshot_id FROM state_snapshots WHERE room_id = $1`, roomID)
		return err
	})
	return snapshots, err
}

// PartialStateCompleted lists the rooms whose partial state was
// completed in the stream range (after, upto].
//
// Every incremental /sync asks, and almost always no room completed in
// its range: the answer then comes from the highest position stored,
// kept in memory, without a query (85 MB of the allocations of issue
// 20's load run, a query per wake-up).
func (db *DB) PartialStateCompleted(ctx context.Context, after, upto int64) ([]string, error) {
	if !db.completedUpTo.known.Load() {
		var n sql.NullInt64
		if err := db.r().queryRow(ctx, `SELECT MAX(stream_pos) FROM partial_state_completed`, nil, &n); err != nil {
			return nil, err
		}
		db.completedUpTo.raise(n.Int64)
		db.completedUpTo.known.Store(true)
	}
	if db.completedUpTo.max.Load() <= after {
		return nil, nil
	}
	return db.r().strings(ctx, `SELECT DISTINCT room_id FROM partial_state_completed WHERE stream_pos > $1 AND stream_pos <= $2`, after, upto)
}

// positionBound is an upper bound of the stream positions in a table,
// raised by the writes (before they commit) and, once, by the table's
// MAX; known is set once that has been read. Only rises: a purge that
// deletes rows leaves it high, which costs a query, never an answer.
type positionBound struct {
	max   atomic.Int64
	known atomic.Bool
}

func (b *positionBound) raise(pos int64) {
	for {
		cur := b.max.Load()
		if pos <= cur || b.max.CompareAndSwap(cur, pos) {
			return
		}
	}
}

// SetEventStatus changes a stored event's status: an event accepted
// against a partial state and refused by the full one (see
// rooms.CompletePartialState).
func (db *DB) SetEventStatus(ctx context.Context, nid int64, status roommodel.Status) error {
	res, err := db.w().exec(ctx, `UPDATE events SET status = $2 WHERE event_nid = $1`, nid, int(status))
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return ErrNotFound
	}
	return nil
}
