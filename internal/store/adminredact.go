package store

import "context"

// What the admin API's user redaction (Synapse's POST
// /_synapse/admin/v1/user/{userId}/redact) reads.

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
