package store

import (
	"context"
	"database/sql"
)

// LastJoinPos is the stream position of a user's latest accepted join to
// a room, 0 when they never joined: history visibility "shared" lets a
// user see the events before it.
func (db *DB) LastJoinPos(ctx context.Context, roomID, userID string) (int64, error) {
	var n sql.NullInt64
	err := db.r().queryRow(ctx, `SELECT MAX(stream_pos) FROM events
		WHERE type = 'm.room.member' AND state_key = $1 AND room_id = $2 AND membership = 'join' AND status = 0`,
		[]any{userID, roomID}, &n)
	return n.Int64, err
}
