package store

import (
	"context"
	"database/sql"
	"errors"
)

// User is a local account.
type User struct {
	Localpart    string
	UserID       string
	PasswordHash string
	IsAdmin      bool
	IsGuest      bool
	UserType     string
	Deactivated  bool
	CreatedTS    int64
	// Locked and Suspended are an administrator's reversible
	// restrictions (spec "Account moderation").
	Locked    bool
	Suspended bool
	// ShadowBanned and Erased: see migration 0027.
	ShadowBanned bool
	Erased       bool
}

const userColumns = `localpart, user_id, password_hash, is_admin, is_guest, user_type, deactivated, created_ts, locked, suspended, shadow_banned, erased`

func scanUser(scan func(...any) error) (User, error) {
	var u User
	err := scan(&u.Localpart, &u.UserID, &u.PasswordHash, &u.IsAdmin, &u.IsGuest, &u.UserType, &u.Deactivated, &u.CreatedTS, &u.Locked, &u.Suspended, &u.ShadowBanned, &u.Erased)
	return u, err
}

// CreateUser inserts a new account; ErrConflict if the localpart is taken.
func (db *DB) CreateUser(ctx context.Context, u User) error {
	_, err := db.w().exec(ctx, `INSERT INTO users (`+userColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		u.Localpart, u.UserID, u.PasswordHash, u.IsAdmin, u.IsGuest, u.UserType, u.Deactivated, u.CreatedTS, u.Locked, u.Suspended, u.ShadowBanned, u.Erased)
	return err
}

// GetUser loads an account by localpart.
func (db *DB) GetUser(ctx context.Context, localpart string) (User, error) {
	if err := checkArgs([]any{localpart}); err != nil {
		return User{}, err
	}
	row := db.read.QueryRowContext(ctx, db.dialect.rewrite(`SELECT `+userColumns+` FROM users WHERE localpart = $1`), localpart)
	u, err := scanUser(row.Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, ErrNotFound
	}
	return u, err
}

// UserExists reports whether a localpart is taken, deactivated or not.
func (db *DB) UserExists(ctx context.Context, localpart string) (bool, error) {
	var n int
	err := db.r().queryRow(ctx, `SELECT COUNT(*) FROM users WHERE localpart = $1`, []any{localpart}, &n)
	return n > 0, err
}

// CountUsers counts accounts, for metrics and the admin API.
func (db *DB) CountUsers(ctx context.Context) (int64, error) {
	var n int64
	err := db.r().queryRow(ctx, `SELECT COUNT(*) FROM users`, nil, &n)
	return n, err
}

// SetPasswordHash replaces an account's password hash.
func (db *DB) SetPasswordHash(ctx context.Context, localpart, hash string) error {
	return affected(db.w().exec(ctx, `UPDATE users SET password_hash = $2 WHERE localpart = $1`, localpart, hash))
}

// SetAdmin grants or revokes server admin rights.
func (db *DB) SetAdmin(ctx context.Context, localpart string, admin bool) error {
	return affected(db.w().exec(ctx, `UPDATE users SET is_admin = $2 WHERE localpart = $1`, localpart, admin))
}

// UpgradeGuest turns a guest account into a full account with a password.
func (db *DB) UpgradeGuest(ctx context.Context, localpart, hash string) error {
	return affected(db.w().exec(ctx, `UPDATE users SET is_guest = FALSE, password_hash = $2 WHERE localpart = $1 AND is_guest = TRUE`, localpart, hash))
}

// SetUserLocked locks or unlocks an account; ErrNotFound for none.
func (db *DB) SetUserLocked(ctx context.Context, localpart string, locked bool) error {
	return affected(db.w().exec(ctx, `UPDATE users SET locked = $1 WHERE localpart = $2`, locked, localpart))
}

// SetUserSuspended suspends or unsuspends an account; ErrNotFound for none.
func (db *DB) SetUserSuspended(ctx context.Context, localpart string, suspended bool) error {
	return affected(db.w().exec(ctx, `UPDATE users SET suspended = $1 WHERE localpart = $2`, suspended, localpart))
}

// DeactivateUser marks an account deactivated and removes its devices
// (and with them every access and refresh token), its password and,
// when erase is set, its profile. The localpart stays reserved forever,
// as the spec requires.
func (db *DB) DeactivateUser(ctx context.Context, localpart string, erase bool) error {
	return db.tx(ctx, func(c conn) error {
		if err := affected(c.exec(ctx, `UPDATE users SET deactivated = TRUE, password_hash = '' WHERE localpart = $1`, localpart)); err != nil {
			return err
		}
		if _, err := c.exec(ctx, `DELETE FROM devices WHERE localpart = $1`, localpart); err != nil {
			return err
		}
		if _, err := c.exec(ctx, `DELETE FROM login_tokens WHERE localpart = $1`, localpart); err != nil {
			return err
		}
		if erase {
			if _, err := c.exec(ctx, `DELETE FROM profile_fields WHERE localpart = $1`, localpart); err != nil {
				return err
			}
			if _, err := c.exec(ctx, `UPDATE users SET erased = TRUE WHERE localpart = $1`, localpart); err != nil {
				return err
			}
		}
		return nil
	})
}
