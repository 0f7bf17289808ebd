package store

import "context"

// AwaitRedaction records a redaction whose target is not stored here
// yet, so that the target is redacted when it arrives.
// ts (milliseconds) is when, for ExpireAwaitedRedactions.
func (db *DB) AwaitRedaction(ctx context.Context, roomID, targetID, redactionID string, ts int64) error {
	_, err := db.w().exec(ctx, `INSERT INTO awaited_redactions (target_id, redaction_id, room_id, recorded_ts) VALUES ($1, $2, $3, $4)
		ON CONFLICT (target_id, redaction_id) DO NOTHING`, targetID, redactionID, roomID, ts)
	return err
}

// RoomAwaitsRedactions reports whether a room has redactions waiting for
// their targets: the engine asks once per loaded room, and looks each
// arriving event up only in rooms that do.
func (db *DB) RoomAwaitsRedactions(ctx context.Context, roomID string) (bool, error) {
	var n int
	err := db.r().queryRow(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM awaited_redactions WHERE room_id = $1 LIMIT 1) AS a`, []any{roomID}, &n)
	return n > 0, err
}

// AwaitedRedactions returns the IDs of the redactions waiting for an
// event of a room, oldest recorded first.
func (db *DB) AwaitedRedactions(ctx context.Context, roomID, targetID string) ([]string, error) {
	rows, err := db.r().query(ctx, `SELECT redaction_id FROM awaited_redactions WHERE target_id = $1 AND room_id = $2
		ORDER BY redaction_id`, targetID, roomID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// ForgetAwaitedRedactions drops the redactions waiting for an event once
// it has arrived (whether or not one of them applied).
func (db *DB) ForgetAwaitedRedactions(ctx context.Context, targetID string) error {
	_, err := db.w().exec(ctx, `DELETE FROM awaited_redactions WHERE target_id = $1`, targetID)
	return err
}

// ExpireAwaitedRedactions forgets the awaited redactions recorded before
// ts (milliseconds), and in each room all but the newest perRoom. Rows
// recorded before recorded_ts existed (0) are stamped with now first,
// so that they get the whole period. It returns how many were dropped.
func (db *DB) ExpireAwaitedRedactions(ctx context.Context, now, ts int64, perRoom int) (int, error) {
	dropped := 0
	err := db.tx(ctx, func(c conn) error {
		if _, err := c.exec(ctx, `UPDATE awaited_redactions SET recorded_ts = $1 WHERE recorded_ts = 0`, now); err != nil {
			return err
		}
		res, err := c.exec(ctx, `DELETE FROM awaited_redactions WHERE recorded_ts < $1`, ts)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		dropped += int(n)
		over, err := c.strings(ctx, `SELECT room_id FROM awaited_redactions GROUP BY room_id HAVING COUNT(*) > $1`, perRoom)
		if err != nil {
			return err
		}
		for _, roomID := range over {
			res, err := c.exec(ctx, `DELETE FROM awaited_redactions WHERE room_id = $1 AND (target_id, redaction_id) NOT IN
				(SELECT target_id, redaction_id FROM awaited_redactions WHERE room_id = $1
				 ORDER BY recorded_ts DESC, redaction_id LIMIT $2)`, roomID, perRoom)
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			dropped += int(n)
		}
		return nil
	})
	return dropped, err
}
