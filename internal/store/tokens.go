package store

import (
	"context"

	"github.com/myelin-chat/myelin/internal/ident"
)

// NewSession describes a login: a device (created if new) and the tokens
// handed to it. Hashes, never token values, reach the database.
type NewSession struct {
	Localpart   string
	DeviceID    string
	DisplayName *string
	AccessHash  string
	ExpiresTS   int64 // 0: the access token does not expire
	RefreshHash string
	NowTS       int64
	IP, Agent   string
}

// CreateSession creates or reuses the device and issues its tokens. Tokens
// issued earlier to the same device are revoked: the spec has the server
// invalidate any access token previously associated with a reused device.
func (db *DB) CreateSession(ctx context.Context, s NewSession) error {
	return db.tx(ctx, func(c conn) error {
		if _, err := c.exec(ctx, `INSERT INTO devices (localpart, device_id, display_name, created_ts, last_seen_ts, last_seen_ip, last_seen_agent)
			VALUES ($1, $2, $3, $4, $4, $5, $6)
			ON CONFLICT (localpart, device_id) DO UPDATE SET last_seen_ts = excluded.last_seen_ts,
				last_seen_ip = excluded.last_seen_ip, last_seen_agent = excluded.last_seen_agent`,
			s.Localpart, s.DeviceID, ident.FreeTextPtr(s.DisplayName), s.NowTS, s.IP, s.Agent); err != nil {
			return err
		}
		if _, err := c.exec(ctx, `DELETE FROM access_tokens WHERE localpart = $1 AND device_id = $2`, s.Localpart, s.DeviceID); err != nil {
			return err
		}
		if _, err := c.exec(ctx, `DELETE FROM refresh_tokens WHERE localpart = $1 AND device_id = $2`, s.Localpart, s.DeviceID); err != nil {
			return err
		}
		return insertTokens(ctx, c, s)
	})
}

func insertTokens(ctx context.Context, c conn, s NewSession) error {
	if s.RefreshHash != "" {
		if _, err := c.exec(ctx, `INSERT INTO refresh_tokens (token_hash, localpart, device_id, created_ts) VALUES ($1, $2, $3, $4)`,
			s.RefreshHash, s.Localpart, s.DeviceID, s.NowTS); err != nil {
			return err
		}
	}
	_, err := c.exec(ctx, `INSERT INTO access_tokens (token_hash, localpart, device_id, created_ts, expires_ts, refresh_hash)
		VALUES ($1, $2, $3, $4, $5, $6)`, s.AccessHash, s.Localpart, s.DeviceID, s.NowTS, s.ExpiresTS, s.RefreshHash)
	return err
}

// TokenOwner is what an access token resolves to.
type TokenOwner struct {
	User        User
	DeviceID    string
	ExpiresTS   int64
	RefreshHash string
	Used        bool
}

// LookupAccessToken resolves an access token hash to its user and device.
func (db *DB) LookupAccessToken(ctx context.Context, hash string) (TokenOwner, error) {
	var o TokenOwner
	u := &o.User
	err := db.r().queryRow(ctx, `SELECT u.localpart, u.user_id, u.password_hash, u.is_admin, u.is_guest, u.user_type, u.deactivated, u.created_ts, u.locked, u.suspended, u.shadow_banned, u.erased,
			t.device_id, t.expires_ts, t.refresh_hash, t.used
		FROM access_tokens t JOIN users u ON u.localpart = t.localpart WHERE t.token_hash = $1`, []any{hash},
		&u.Localpart, &u.UserID, &u.PasswordHash, &u.IsAdmin, &u.IsGuest, &u.UserType, &u.Deactivated, &u.CreatedTS, &u.Locked, &u.Suspended, &u.ShadowBanned, &u.Erased,
		&o.DeviceID, &o.ExpiresTS, &o.RefreshHash, &o.Used)
	return o, err
}

// MarkAccessTokenUsed records the first use of a refreshed access token:
// from then on the refresh token that produced it is dead.
func (db *DB) MarkAccessTokenUsed(ctx context.Context, hash, refreshHash string) error {
	return db.tx(ctx, func(c conn) error {
		if _, err := c.exec(ctx, `UPDATE access_tokens SET used = TRUE WHERE token_hash = $1`, hash); err != nil {
			return err
		}
		if refreshHash == "" {
			return nil
		}
		_, err := c.exec(ctx, `DELETE FROM refresh_tokens WHERE next_hash = $1`, refreshHash)
		return err
	})
}

// Refresh exchanges the refresh token oldHash for the new pair in next
// (whose Localpart and DeviceID are filled in from the old token). The old
// refresh token stays usable until the new pair is used, so a client that
// lost the response can retry; a retry replaces the unused pair.
func (db *DB) Refresh(ctx context.Context, oldHash string, next NewSession) (NewSession, error) {
	err := db.tx(ctx, func(c conn) error {
		var pending string
		if err := c.queryRow(ctx, `SELECT localpart, device_id, next_hash FROM refresh_tokens WHERE token_hash = $1`, []any{oldHash},
			&next.Localpart, &next.DeviceID, &pending); err != nil {
			return err
		}
		if pending != "" {
			if _, err := c.exec(ctx, `DELETE FROM refresh_tokens WHERE token_hash = $1`, pending); err != nil {
				return err
			}
			if _, err := c.exec(ctx, `DELETE FROM access_tokens WHERE refresh_hash = $1`, pending); err != nil {
				return err
			}
		}
		// Refreshing counts as using the pair that oldHash came with, which
		// retires oldHash's own predecessor.
		if _, err := c.exec(ctx, `DELETE FROM refresh_tokens WHERE next_hash = $1`, oldHash); err != nil {
			return err
		}
		if _, err := c.exec(ctx, `DELETE FROM access_tokens WHERE refresh_hash = $1`, oldHash); err != nil {
			return err
		}
		// Compare-and-swap: of two concurrent refreshes with one token, the
		// second finds next_hash changed and is refused, so that a device
		// never ends up with two live token chains.
		if err := affected(c.exec(ctx, `UPDATE refresh_tokens SET next_hash = $2 WHERE token_hash = $1 AND next_hash = $3`,
			oldHash, next.RefreshHash, pending)); err != nil {
			return err
		}
		return insertTokens(ctx, c, next)
	})
	return next, err
}

// InsertLoginToken stores a single-use m.login.token.
func (db *DB) InsertLoginToken(ctx context.Context, hash, localpart string, expiresTS int64) error {
	_, err := db.w().exec(ctx, `INSERT INTO login_tokens (token_hash, localpart, expires_ts) VALUES ($1, $2, $3)`, hash, localpart, expiresTS)
	return err
}

// ConsumeLoginToken deletes a login token and returns its user if it had
// not expired at nowTS.
func (db *DB) ConsumeLoginToken(ctx context.Context, hash string, nowTS int64) (string, error) {
	var localpart string
	var expires int64
	err := db.tx(ctx, func(c conn) error {
		if err := c.queryRow(ctx, `SELECT localpart, expires_ts FROM login_tokens WHERE token_hash = $1`, []any{hash}, &localpart, &expires); err != nil {
			return err
		}
		_, err := c.exec(ctx, `DELETE FROM login_tokens WHERE token_hash = $1 OR expires_ts < $2`, hash, nowTS)
		return err
	})
	if err == nil && expires < nowTS {
		return "", ErrNotFound
	}
	return localpart, err
}

// InsertOpenIDToken stores an OpenID token (by hash) for a user.
func (db *DB) InsertOpenIDToken(ctx context.Context, hash, localpart string, expiresTS int64) error {
	_, err := db.w().exec(ctx, `INSERT INTO openid_tokens (token_hash, localpart, expires_ts) VALUES ($1, $2, $3)`, hash, localpart, expiresTS)
	return err
}

// OpenIDTokenUser returns the user of an OpenID token still valid at nowTS.
func (db *DB) OpenIDTokenUser(ctx context.Context, hash string, nowTS int64) (string, error) {
	var lp string
	err := db.r().queryRow(ctx, `SELECT localpart FROM openid_tokens WHERE token_hash = $1 AND expires_ts > $2`, []any{hash, nowTS}, &lp)
	return lp, err
}
