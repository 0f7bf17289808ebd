package store

import (
	"context"

	"github.com/myelin-chat/myelin/internal/ident"
)

// Presence is a user's stored presence; StatusMsg is nil when none is set.
type Presence struct {
	UserID                 string
	Presence               string
	StatusMsg              *string
	LastActiveTS           int64
	LastUserSyncTS         int64
	LastFederationUpdateTS int64
	CurrentlyActive        bool
	StreamPos              int64
}

const presenceColumns = `user_id, presence, status_msg, last_active_ts, last_user_sync_ts, last_federation_update_ts, currently_active, stream_pos`

func scanPresence(scan func(...any) error) (Presence, error) {
	var p Presence
	err := scan(&p.UserID, &p.Presence, &p.StatusMsg, &p.LastActiveTS, &p.LastUserSyncTS, &p.LastFederationUpdateTS, &p.CurrentlyActive, &p.StreamPos)
	return p, err
}

// PutPresence stores a user's presence at its stream position. A row
// already at a later position is kept: updates of one user take their
// positions in order, but may reach the database out of it.
func (db *DB) PutPresence(ctx context.Context, p Presence) error {
	_, err := db.w().exec(ctx, `INSERT INTO user_presence (`+presenceColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (user_id) DO UPDATE SET presence = excluded.presence, status_msg = excluded.status_msg,
			last_active_ts = excluded.last_active_ts, last_user_sync_ts = excluded.last_user_sync_ts,
			last_federation_update_ts = excluded.last_federation_update_ts, currently_active = excluded.currently_active,
			stream_pos = excluded.stream_pos
		WHERE user_presence.stream_pos < excluded.stream_pos`,
		p.UserID, p.Presence, ident.FreeTextPtr(p.StatusMsg), p.LastActiveTS, p.LastUserSyncTS, p.LastFederationUpdateTS, p.CurrentlyActive, p.StreamPos)
	return err
}

// TouchPresence saves a user's timestamps without a new stream position:
// they changed in ways clients need not be told about, but the timeouts
// that follow from them must survive a restart.
func (db *DB) TouchPresence(ctx context.Context, p Presence) error {
	_, err := db.w().exec(ctx, `UPDATE user_presence SET last_active_ts = $2, last_user_sync_ts = $3, last_federation_update_ts = $4
		WHERE user_id = $1`, p.UserID, p.LastActiveTS, p.LastUserSyncTS, p.LastFederationUpdateTS)
	return err
}

// GetPresence loads a user's presence; ErrNotFound if none is stored.
func (db *DB) GetPresence(ctx context.Context, userID string) (Presence, error) {
	var p Presence
	err := db.r().queryRow(ctx, `SELECT `+presenceColumns+` FROM user_presence WHERE user_id = $1`, []any{userID},
		&p.UserID, &p.Presence, &p.StatusMsg, &p.LastActiveTS, &p.LastUserSyncTS, &p.LastFederationUpdateTS, &p.CurrentlyActive, &p.StreamPos)
	return p, err
}

// PresenceNotOffline lists the users whose presence is not offline: the
// ones whose timeouts the presence service watches after a restart.
func (db *DB) PresenceNotOffline(ctx context.Context) ([]Presence, error) {
	return collect(ctx, db.r(), scanPresence, `SELECT `+presenceColumns+` FROM user_presence WHERE presence <> 'offline'`)
}

// PresenceChanges lists the presence, changed at positions in (after,
// upto], of the viewer and of every user joined to a room the viewer is
// joined to, in position order.
func (db *DB) PresenceChanges(ctx context.Context, viewer string, after, upto int64) ([]Presence, error) {
	q := presenceChangesSince
	if after == 0 {
		q = presenceChangesAll
	}
	return collect(ctx, db.r(), scanPresence, q, viewer, after, upto)
}

// The two forms of PresenceChanges. An incremental /sync's window holds
// a few changes, while the viewer's rooms may hold thousands of members:
// asking, of each change, whether its user shares one of the viewer's
// rooms (a few index probes) costs what is active, where listing every
// co-member first (SQLite materialises the IN list) costs what is stored,
// on every wake-up of every long-poll; with 1,000 users, a tenth of them
// polling, that list was half the server's CPU (docs/benchmarks.md, scale
// curve). An initial sync (after = 0) reads every user's presence row, so
// there the one list of co-members is the cheaper.
const (
	presenceChangesSince = `SELECT ` + presenceColumns + ` FROM user_presence p
		WHERE p.stream_pos > $2 AND p.stream_pos <= $3 AND (p.user_id = $1 OR EXISTS (
			SELECT 1 FROM current_state mine
			JOIN current_state theirs ON theirs.room_id = mine.room_id AND theirs.type = 'm.room.member'
				AND theirs.state_key = p.user_id AND theirs.membership = 'join'
			WHERE mine.type = 'm.room.member' AND mine.state_key = $1 AND mine.membership = 'join'))
		ORDER BY p.stream_pos`
	presenceChangesAll = `SELECT ` + presenceColumns + ` FROM user_presence
		WHERE stream_pos > $2 AND stream_pos <= $3 AND (user_id = $1 OR user_id IN (
			SELECT theirs.state_key FROM current_state mine
			JOIN current_state theirs ON theirs.room_id = mine.room_id AND theirs.type = 'm.room.member' AND theirs.membership = 'join'
			WHERE mine.type = 'm.room.member' AND mine.state_key = $1 AND mine.membership = 'join'))
		ORDER BY stream_pos`
)

// ShareRoom reports whether two users are both joined to some room.
func (db *DB) ShareRoom(ctx context.Context, a, b string) (bool, error) {
	ids, err := db.r().strings(ctx, `SELECT mine.room_id FROM current_state mine
		JOIN current_state theirs ON theirs.room_id = mine.room_id AND theirs.type = 'm.room.member'
			AND theirs.state_key = $2 AND theirs.membership = 'join'
		WHERE mine.type = 'm.room.member' AND mine.state_key = $1 AND mine.membership = 'join' LIMIT 1`, a, b)
	return len(ids) > 0, err
}
