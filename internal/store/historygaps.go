package store

import (
	"context"
	"errors"
)

// HistoryGap is a hole in a room's history below EventID (at stream
// position Top), with the stream positions Low..Next still free for the
// events that fill it.
type HistoryGap struct {
	EventID, RoomID string
	Top, Low, Next  int64
}

// RecordHistoryGap records a hole below an event at position top, with
// low..top-1 kept free for it.
func (db *DB) RecordHistoryGap(ctx context.Context, roomID, eventID string, top, low int64) error {
	_, err := db.w().exec(ctx, `INSERT INTO history_gaps (event_id, room_id, top, low, next) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (event_id) DO NOTHING`, eventID, roomID, top, low, top-1)
	return err
}

// HistoryGaps lists a room's open holes whose positions (low up to the
// event above them, top) meet lo..hi, newest first.
func (db *DB) HistoryGaps(ctx context.Context, roomID string, lo, hi int64) ([]HistoryGap, error) {
	rows, err := db.r().query(ctx, `SELECT event_id, room_id, top, low, next FROM history_gaps
		WHERE room_id = $1 AND top >= $2 AND low <= $3 ORDER BY top DESC LIMIT 50`, roomID, lo, hi)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []HistoryGap
	for rows.Next() {
		var g HistoryGap
		if err := rows.Scan(&g.EventID, &g.RoomID, &g.Top, &g.Low, &g.Next); err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

// TakeGapPositions hands out up to n of a hole's free positions, the
// highest first: the first position and how many (0 when the hole has
// none left or is closed).
func (db *DB) TakeGapPositions(ctx context.Context, eventID string, n int) (first int64, got int, err error) {
	err = db.tx(ctx, func(c conn) error {
		var low, next int64
		if err := c.queryRow(ctx, `SELECT low, next FROM history_gaps WHERE event_id = $1`, []any{eventID}, &low, &next); err != nil {
			if errors.Is(err, ErrNotFound) {
				return nil
			}
			return err
		}
		got = int(min(int64(n), next-low+1))
		if got <= 0 {
			got = 0
			return nil
		}
		first = next - int64(got) + 1
		_, err := c.exec(ctx, `UPDATE history_gaps SET next = $2 WHERE event_id = $1`, eventID, first-1)
		return err
	})
	return first, got, err
}

// CloseHistoryGap forgets a hole: filled, or out of positions.
func (db *DB) CloseHistoryGap(ctx context.Context, eventID string) error {
	_, err := db.w().exec(ctx, `DELETE FROM history_gaps WHERE event_id = $1`, eventID)
	return err
}
