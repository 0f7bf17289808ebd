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
