package store

import "context"

// What the admin API's later user calls read and change: the events a
// user redaction takes (Synapse's POST
// /_synapse/admin/v1/user/{userId}/redact) and devices an admin creates.

// RedactableEventsOf is the IDs of up to limit of a sender's events in a
// room that a user redaction takes, newest first: accepted timeline
// events not redacted yet, of the types Synapse's redaction takes
// (messages, encrypted messages, and joins, whose display name and
// avatar a redaction removes; other membership events stay).
func (db *DB) RedactableEventsOf(ctx context.Context, roomID, sender string, limit int) ([]string, error) {
	return db.r().strings(ctx, `SELECT event_id FROM events
		WHERE room_id = $1 AND sender = $2 AND stream_pos IS NOT NULL AND status = 0 AND redacted_by IS NULL
			AND (type IN ('m.room.message', 'm.room.encrypted') OR (type = 'm.room.member' AND membership = 'join'))
		ORDER BY stream_pos DESC LIMIT $3`, roomID, sender, limit)
}

// CreateDevice registers a device with no tokens (Synapse's admin POST
// /_synapse/admin/v2/users/{userId}/devices); a device the user already
// has is left as it is. created reports whether it is new.
func (db *DB) CreateDevice(ctx context.Context, localpart, deviceID string, nowTS int64) (created bool, err error) {
	n, err := db.w().exec(ctx, `INSERT INTO devices (localpart, device_id, created_ts, last_seen_ts, last_seen_ip, last_seen_agent)
		VALUES ($1, $2, $3, 0, '', '') ON CONFLICT (localpart, device_id) DO NOTHING`, localpart, deviceID, nowTS)
	if err != nil {
		return false, err
	}
	rows, err := n.RowsAffected()
	return rows > 0, err
}

// SentInviteCount is how many invites a user has sent since fromTS
// (milliseconds, by the invites' origin_server_ts: Myelin keeps no
// receive time), as Synapse's sent_invite_count.
func (db *DB) SentInviteCount(ctx context.Context, sender string, fromTS int64) (int64, error) {
	var n int64
	err := db.r().queryRow(ctx, `SELECT COUNT(*) FROM events
		WHERE sender = $1 AND type = 'm.room.member' AND membership = 'invite' AND origin_ts >= $2 AND status = 0 AND stream_pos IS NOT NULL`,
		[]any{sender, fromTS}, &n)
	return n, err
}

// CumulativeJoinedRooms is how many rooms a user has ever joined (left
// ones included), as Synapse's cumulative_joined_room_count.
func (db *DB) CumulativeJoinedRooms(ctx context.Context, userID string) (int64, error) {
	var n int64
	err := db.r().queryRow(ctx, `SELECT COUNT(DISTINCT room_id) FROM events
		WHERE type = 'm.room.member' AND state_key = $1 AND membership = 'join' AND status = 0`, []any{userID}, &n)
	return n, err
}
