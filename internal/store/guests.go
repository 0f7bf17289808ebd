package store

import "context"

// JoinedGuests lists the local guest accounts joined to a room.
func (db *DB) JoinedGuests(ctx context.Context, roomID string) ([]string, error) {
	return db.r().strings(ctx, `SELECT cs.state_key FROM current_state cs JOIN users u ON u.user_id = cs.state_key
		WHERE cs.room_id = $1 AND cs.type = 'm.room.member' AND cs.membership = 'join' AND u.is_guest = TRUE
		ORDER BY cs.state_key`, roomID)
}
