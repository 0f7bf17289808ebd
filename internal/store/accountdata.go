package store

import "context"

// AccountData is one account data entry; RoomID is "" for global data.
type AccountData struct {
	RoomID    string
	Type      string
	Content   string
	StreamPos int64
}

// PutAccountData stores (replaces) an account data entry at a stream
// position.
func (db *DB) PutAccountData(ctx context.Context, userID, roomID, typ, content string, pos int64) error {
	_, err := db.w().exec(ctx, `INSERT INTO account_data (user_id, room_id, data_type, content, stream_pos) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (user_id, room_id, data_type) DO UPDATE SET content = excluded.content, stream_pos = excluded.stream_pos`,
		userID, roomID, typ, content, pos)
	return err
}

// GetAccountData loads one entry's content; ErrNotFound if unset.
func (db *DB) GetAccountData(ctx context.Context, userID, roomID, typ string) (string, error) {
	var content string
	err := db.r().queryRow(ctx, `SELECT content FROM account_data WHERE user_id = $1 AND room_id = $2 AND data_type = $3`,
		[]any{userID, roomID, typ}, &content)
	return content, err
}

// AccountDataChanges lists a user's entries changed at positions in
// (after, upto], oldest first.
func (db *DB) AccountDataChanges(ctx context.Context, userID string, after, upto int64) ([]AccountData, error) {
	return collect(ctx, db.r(), func(scan func(...any) error) (AccountData, error) {
		var a AccountData
		err := scan(&a.RoomID, &a.Type, &a.Content, &a.StreamPos)
		return a, err
	}, `SELECT room_id, data_type, content, stream_pos FROM account_data
		WHERE user_id = $1 AND stream_pos > $2 AND stream_pos <= $3 ORDER BY stream_pos`, userID, after, upto)
}

// RoomAccountData lists a user's entries of the given rooms stored at
// positions up to upto (one query per batchRooms rooms, by the primary
// key): what sliding sync sends of a room a connection gets for the
// first time.
func (db *DB) RoomAccountData(ctx context.Context, userID string, roomIDs []string, upto int64) ([]AccountData, error) {
	var out []AccountData
	for len(roomIDs) > 0 {
		n := min(len(roomIDs), batchRooms)
		args := []any{userID, upto}
		for _, r := range roomIDs[:n] {
			args = append(args, r)
		}
		rows, err := collect(ctx, db.r(), func(scan func(...any) error) (AccountData, error) {
			var a AccountData
			err := scan(&a.RoomID, &a.Type, &a.Content, &a.StreamPos)
			return a, err
		}, `SELECT room_id, data_type, content, stream_pos FROM account_data
			WHERE user_id = $1 AND stream_pos <= $2 AND room_id IN (`+placeholders(n, 3)+`) ORDER BY stream_pos`, args...)
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
		roomIDs = roomIDs[n:]
	}
	return out, nil
}
