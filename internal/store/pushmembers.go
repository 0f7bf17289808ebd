package store

import (
	"context"
	"errors"
)

// MembershipChangedAfter reports whether a room has an accepted
// m.room.member event after stream position pos: the push worker, which
// runs behind the events it evaluates, asks it to learn whether the
// room's current members are still those at the event.
func (db *DB) MembershipChangedAfter(ctx context.Context, roomID string, pos int64) (bool, error) {
	var one int
	err := db.r().queryRow(ctx, `SELECT 1 FROM events
		WHERE room_id = $1 AND stream_pos > $2 AND type = 'm.room.member' AND status = 0 LIMIT 1`, []any{roomID, pos}, &one)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}
