package store

import "context"

// MoveAliases points every local alias of a room at another room (room
// upgrades move them to the replacement room).
func (db *DB) MoveAliases(ctx context.Context, fromRoom, toRoom string) error {
	_, err := db.w().exec(ctx, `UPDATE room_aliases SET room_id = $2 WHERE room_id = $1`, fromRoom, toRoom)
	return err
}

// PublishedRoom is a room of the public directory and its joined member
// count.
type PublishedRoom struct {
	RoomID string
	Joined int64
}

// PublishedRoomsByMembers lists the published rooms, the most joined
// members first, then in room ID order.
func (db *DB) PublishedRoomsByMembers(ctx context.Context) ([]PublishedRoom, error) {
	return db.PublishedRoomsIn(ctx, DirectoryScope{})
}

const mutualRoomsFrom = ` FROM current_state a JOIN current_state b ON b.room_id = a.room_id
	AND b.type = 'm.room.member' AND b.state_key = $2 AND b.membership = 'join'
	WHERE a.type = 'm.room.member' AND a.state_key = $1 AND a.membership = 'join'`

// MutualRooms lists, in room ID order, up to limit rooms after the room
// ID after where both users are joined.
func (db *DB) MutualRooms(ctx context.Context, userA, userB, after string, limit int) ([]string, error) {
	return db.r().strings(ctx, `SELECT a.room_id`+mutualRoomsFrom+` AND a.room_id > $3 ORDER BY a.room_id LIMIT $4`,
		userA, userB, after, limit)
}

// CountMutualRooms counts the rooms where both users are joined.
func (db *DB) CountMutualRooms(ctx context.Context, userA, userB string) (int64, error) {
	var n int64
	err := db.r().queryRow(ctx, `SELECT COUNT(*)`+mutualRoomsFrom, []any{userA, userB}, &n)
	return n, err
}
