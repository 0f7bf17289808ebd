package store

import "context"

// Receipt is a user's receipt for an event.
type Receipt struct {
	RoomID, UserID, Type, ThreadID, EventID string
	TS, StreamPos                           int64
}

// PutReceipt stores a receipt, replacing the user's previous one of the
// same type and thread in the room.
func (db *DB) PutReceipt(ctx context.Context, r Receipt) error {
	_, err := db.w().exec(ctx, `INSERT INTO receipts (room_id, user_id, receipt_type, thread_id, event_id, ts, stream_pos)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (room_id, user_id, receipt_type, thread_id) DO UPDATE SET event_id = excluded.event_id,
			ts = excluded.ts, stream_pos = excluded.stream_pos`,
		r.RoomID, r.UserID, r.Type, r.ThreadID, r.EventID, r.TS, r.StreamPos)
	return err
}

// UserReceipt returns a user's receipt of a type and thread in a room.
func (db *DB) UserReceipt(ctx context.Context, roomID, userID, typ, threadID string) (Receipt, error) {
	r := Receipt{RoomID: roomID, UserID: userID, Type: typ, ThreadID: threadID}
	err := db.r().queryRow(ctx, `SELECT event_id, ts, stream_pos FROM receipts
		WHERE room_id = $1 AND user_id = $2 AND receipt_type = $3 AND thread_id = $4`,
		[]any{roomID, userID, typ, threadID}, &r.EventID, &r.TS, &r.StreamPos)
	return r, err
}

// RoomReceipts lists a room's receipts with positions in (after, upto].
func (db *DB) RoomReceipts(ctx context.Context, roomID string, after, upto int64) ([]Receipt, error) {
	return collect(ctx, db.r(), func(scan func(...any) error) (Receipt, error) {
		r := Receipt{RoomID: roomID}
		err := scan(&r.UserID, &r.Type, &r.ThreadID, &r.EventID, &r.TS, &r.StreamPos)
		return r, err
	}, `SELECT user_id, receipt_type, thread_id, event_id, ts, stream_pos FROM receipts
		WHERE room_id = $1 AND stream_pos > $2 AND stream_pos <= $3 ORDER BY stream_pos`, roomID, after, upto)
}
