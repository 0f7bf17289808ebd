package store

import "context"

// MediaRoom records that mxc://Origin/MediaID was posted in RoomID.
type MediaRoom struct {
	Origin, MediaID, RoomID string
}

// maxMediaRooms bounds the rooms MediaRoomsOf reads for one piece of
// media.
const maxMediaRooms = 1000

// AddMediaRooms records media posted in rooms, in one transaction; a
// pair already recorded is left as it is.
func (db *DB) AddMediaRooms(ctx context.Context, ms []MediaRoom) error {
	return db.tx(ctx, func(c conn) error {
		for _, m := range ms {
			if _, err := c.exec(ctx, `INSERT INTO media_rooms (media_origin, media_id, room_id) VALUES ($1, $2, $3)
				ON CONFLICT DO NOTHING`, m.Origin, m.MediaID, m.RoomID); err != nil {
				return err
			}
		}
		return nil
	})
}

// MediaRoomsOf lists the rooms mxc://origin/mediaID was posted in (at
// most maxMediaRooms of them).
func (db *DB) MediaRoomsOf(ctx context.Context, origin, mediaID string) ([]string, error) {
	return collect(ctx, db.r(), func(scan func(...any) error) (string, error) {
		var roomID string
		err := scan(&roomID)
		return roomID, err
	}, `SELECT room_id FROM media_rooms WHERE media_origin = $1 AND media_id = $2 LIMIT $3`, origin, mediaID, maxMediaRooms)
}
