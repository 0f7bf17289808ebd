package store

import "context"

// AppServicePosition is the stream position up to which an application
// service has been sent events; found is false before its first start.
func (db *DB) AppServicePosition(ctx context.Context, asID string) (int64, bool, error) {
	var pos int64
	err := db.r().queryRow(ctx, `SELECT position FROM appservice_positions WHERE as_id = $1`, []any{asID}, &pos)
	if err == ErrNotFound {
		return 0, false, nil
	}
	return pos, err == nil, err
}

// SetAppServicePosition records that an application service has been
// sent the events up to position.
func (db *DB) SetAppServicePosition(ctx context.Context, asID string, position int64) error {
	_, err := db.w().exec(ctx, `INSERT INTO appservice_positions (as_id, position) VALUES ($1, $2)
		ON CONFLICT (as_id) DO UPDATE SET position = excluded.position`, asID, position)
	return err
}
