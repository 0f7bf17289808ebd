package store

import (
	"context"
	"database/sql"
)

// RegistrationToken is an admin-issued token for m.login.registration_token.
type RegistrationToken struct {
	Token       string `json:"token"`
	UsesAllowed *int64 `json:"uses_allowed"`
	Pending     int64  `json:"pending"`
	Completed   int64  `json:"completed"`
	ExpiryTime  *int64 `json:"expiry_time"`
}

// Valid reports whether the token can start another registration at nowTS.
func (t RegistrationToken) Valid(nowTS int64) bool {
	if t.ExpiryTime != nil && *t.ExpiryTime <= nowTS {
		return false
	}
	return t.UsesAllowed == nil || t.Pending+t.Completed < *t.UsesAllowed
}

func scanRegToken(scan func(...any) error) (RegistrationToken, error) {
	var t RegistrationToken
	var uses, expiry sql.NullInt64
	err := scan(&t.Token, &uses, &t.Pending, &t.Completed, &expiry)
	if uses.Valid {
		t.UsesAllowed = &uses.Int64
	}
	if expiry.Valid {
		t.ExpiryTime = &expiry.Int64
	}
	return t, err
}

const regTokenColumns = `token, uses_allowed, pending, completed, expiry_time`

// CreateRegistrationToken stores a new token; ErrConflict if it exists.
func (db *DB) CreateRegistrationToken(ctx context.Context, t RegistrationToken) error {
	_, err := db.w().exec(ctx, `INSERT INTO registration_tokens (`+regTokenColumns+`) VALUES ($1, $2, 0, 0, $3)`,
		t.Token, t.UsesAllowed, t.ExpiryTime)
	return err
}

// GetRegistrationToken loads one token.
func (db *DB) GetRegistrationToken(ctx context.Context, token string) (RegistrationToken, error) {
	rows, err := db.r().query(ctx, `SELECT `+regTokenColumns+` FROM registration_tokens WHERE token = $1`, token)
	if err != nil {
		return RegistrationToken{}, err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return RegistrationToken{}, err
		}
		return RegistrationToken{}, ErrNotFound
	}
	return scanRegToken(rows.Scan)
}

// ListRegistrationTokens returns every token.
func (db *DB) ListRegistrationTokens(ctx context.Context) ([]RegistrationToken, error) {
	return collect(ctx, db.r(), scanRegToken, `SELECT `+regTokenColumns+` FROM registration_tokens ORDER BY token`)
}

// UpdateRegistrationToken changes a token's limits.
func (db *DB) UpdateRegistrationToken(ctx context.Context, token string, usesAllowed, expiryTime *int64) error {
	return affected(db.w().exec(ctx, `UPDATE registration_tokens SET uses_allowed = $2, expiry_time = $3 WHERE token = $1`,
		token, usesAllowed, expiryTime))
}

// DeleteRegistrationToken removes a token.
func (db *DB) DeleteRegistrationToken(ctx context.Context, token string) error {
	return affected(db.w().exec(ctx, `DELETE FROM registration_tokens WHERE token = $1`, token))
}

// ReserveRegistrationToken counts a registration in progress against the
// token if it is still valid at nowTS; ErrNotFound if it is not.
func (db *DB) ReserveRegistrationToken(ctx context.Context, token string, nowTS int64) error {
	return affected(db.w().exec(ctx, `UPDATE registration_tokens SET pending = pending + 1
		WHERE token = $1 AND (expiry_time IS NULL OR expiry_time > $2)
		AND (uses_allowed IS NULL OR pending + completed < uses_allowed)`, token, nowTS))
}

// CompleteRegistrationToken turns a reserved use into a completed one.
func (db *DB) CompleteRegistrationToken(ctx context.Context, token string) error {
	_, err := db.w().exec(ctx, `UPDATE registration_tokens SET pending = pending - 1, completed = completed + 1 WHERE token = $1 AND pending > 0`, token)
	return err
}

// ReleaseRegistrationToken drops a reservation whose session expired.
func (db *DB) ReleaseRegistrationToken(ctx context.Context, token string) error {
	_, err := db.w().exec(ctx, `UPDATE registration_tokens SET pending = pending - 1 WHERE token = $1 AND pending > 0`, token)
	return err
}
