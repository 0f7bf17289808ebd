package store

import (
	"context"
	"errors"
	"strconv"
	"strings"
)

// LastPosOfTypes is the stream position of a room's last accepted event
// at or before upto whose type is one of types (0 when none): sliding
// sync's bump_stamp. It walks the room's events newest first on
// events_room_stream, which stops at the first match, usually the last
// message.
func (db *DB) LastPosOfTypes(ctx context.Context, roomID string, types []string, upto int64) (int64, error) {
	args := []any{roomID, upto}
	var in strings.Builder
	for i, t := range types {
		if i > 0 {
			in.WriteString(", ")
		}
		args = append(args, t)
		in.WriteString("$" + strconv.Itoa(len(args)))
	}
	var pos int64
	err := db.r().queryRow(ctx, `SELECT stream_pos FROM events WHERE room_id = $1 AND stream_pos <= $2 AND status = 0
		AND type IN (`+in.String()+`) ORDER BY stream_pos DESC LIMIT 1`, args, &pos)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	return pos, err
}
