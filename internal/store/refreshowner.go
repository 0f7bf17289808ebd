package store

import "context"

// RefreshTokenOwner is the localpart whose device a refresh token
// belongs to; ErrNotFound for an unknown token. Read before a refresh,
// so that a locked account's token is refused without being rotated.
func (db *DB) RefreshTokenOwner(ctx context.Context, hash string) (string, error) {
	var localpart string
	err := db.r().queryRow(ctx, `SELECT localpart FROM refresh_tokens WHERE token_hash = $1`, []any{hash}, &localpart)
	return localpart, err
}
