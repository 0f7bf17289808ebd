package store

import "context"

// AppServiceStreamPosition is how far an application service has been
// sent one of the streams besides room events (stream "ephemeral":
// receipts, presence, device list changes); found is false before the
// service's first start.
func (db *DB) AppServiceStreamPosition(ctx context.Context, asID, stream string) (int64, bool, error) {
	var pos int64
	err := db.r().queryRow(ctx, `SELECT position FROM appservice_stream_positions WHERE as_id = $1 AND stream = $2`, []any{asID, stream}, &pos)
	if err == ErrNotFound {
		return 0, false, nil
	}
	return pos, err == nil, err
}

// SetAppServiceStreamPosition records an application service's position
// in one of those streams.
func (db *DB) SetAppServiceStreamPosition(ctx context.Context, asID, stream string, position int64) error {
	_, err := db.w().exec(ctx, `INSERT INTO appservice_stream_positions (as_id, stream, position) VALUES ($1, $2, $3)
		ON CONFLICT (as_id, stream) DO UPDATE SET position = excluded.position`, asID, stream, position)
	return err
}

// ReceiptsBetween lists the receipts of every room stored at positions
// in (after, upto], in stream order, at most limit.
func (db *DB) ReceiptsBetween(ctx context.Context, after, upto int64, limit int) ([]Receipt, error) {
	return collect(ctx, db.r(), func(scan func(...any) error) (Receipt, error) {
		var r Receipt
		err := scan(&r.RoomID, &r.UserID, &r.Type, &r.ThreadID, &r.EventID, &r.TS, &r.StreamPos)
		return r, err
	}, `SELECT room_id, user_id, receipt_type, thread_id, event_id, ts, stream_pos FROM receipts
		WHERE stream_pos > $1 AND stream_pos <= $2 ORDER BY stream_pos LIMIT $3`, after, upto, limit)
}

// PresenceChangedUsers lists the users whose presence changed at
// positions in (after, upto].
func (db *DB) PresenceChangedUsers(ctx context.Context, after, upto int64) ([]string, error) {
	return db.r().strings(ctx, `SELECT user_id FROM user_presence WHERE stream_pos > $1 AND stream_pos <= $2`, after, upto)
}

// ToDeviceRecipient is a device with to-device messages waiting.
type ToDeviceRecipient struct {
	UserID, DeviceID string
}

// ToDeviceRecipients lists the devices with messages in their inbox.
func (db *DB) ToDeviceRecipients(ctx context.Context) ([]ToDeviceRecipient, error) {
	return collect(ctx, db.r(), func(scan func(...any) error) (ToDeviceRecipient, error) {
		var r ToDeviceRecipient
		err := scan(&r.UserID, &r.DeviceID)
		return r, err
	}, `SELECT DISTINCT user_id, device_id FROM to_device_inbox`)
}
