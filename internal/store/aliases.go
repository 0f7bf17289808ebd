package store

import "context"

// CreateAlias maps an alias to a room; ErrConflict if it is taken.
func (db *DB) CreateAlias(ctx context.Context, alias, roomID, creator string) error {
	_, err := db.w().exec(ctx, `INSERT INTO room_aliases (alias, room_id, creator) VALUES ($1, $2, $3)`, alias, roomID, creator)
	return err
}

// ResolveAlias returns the room an alias points to.
func (db *DB) ResolveAlias(ctx context.Context, alias string) (roomID, creator string, err error) {
	err = db.r().queryRow(ctx, `SELECT room_id, creator FROM room_aliases WHERE alias = $1`, []any{alias}, &roomID, &creator)
	return roomID, creator, err
}

// DeleteAlias removes an alias; ErrNotFound if it does not exist.
func (db *DB) DeleteAlias(ctx context.Context, alias string) error {
	return affected(db.w().exec(ctx, `DELETE FROM room_aliases WHERE alias = $1`, alias))
}

// RoomAliases lists the local aliases of a room.
func (db *DB) RoomAliases(ctx context.Context, roomID string) ([]string, error) {
	return db.r().strings(ctx, `SELECT alias FROM room_aliases WHERE room_id = $1 ORDER BY alias`, roomID)
}

// SetRoomPublished lists a room in the public directory, or removes it.
func (db *DB) SetRoomPublished(ctx context.Context, roomID string, published bool) error {
	return affected(db.w().exec(ctx, `UPDATE rooms SET published = $2 WHERE room_id = $1`, roomID, published))
}

// RoomPublished reports whether a room is in the public directory.
func (db *DB) RoomPublished(ctx context.Context, roomID string) (bool, error) {
	var p bool
	err := db.r().queryRow(ctx, `SELECT published FROM rooms WHERE room_id = $1`, []any{roomID}, &p)
	return p, err
}
