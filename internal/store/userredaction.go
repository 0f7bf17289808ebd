package store

import (
	"context"

	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
)

// RedactionCandidate is an event a bulk redaction (MSC4194) may redact.
type RedactionCandidate struct {
	EventID string
	Status  roommodel.Status
}

// UnredactedEventsBy lists, newest first, up to limit of a sender's
// events in a room that are not redacted yet: timeline events only (no
// state), accepted or soft-failed (a rejected event is not in the room,
// so redacting it changes nothing). Newest is arrival order (event_nid),
// which, unlike stream_pos, soft-failed events have too; Synapse's
// stream_ordering is arrival order as well.
func (db *DB) UnredactedEventsBy(ctx context.Context, roomID, sender string, limit int) ([]RedactionCandidate, error) {
	return collect(ctx, db.r(), func(scan func(...any) error) (RedactionCandidate, error) {
		var c RedactionCandidate
		var status int
		err := scan(&c.EventID, &status)
		c.Status = roommodel.Status(status)
		return c, err
	}, `SELECT event_id, status FROM events WHERE room_id = $1 AND sender = $2 AND state_key IS NULL
		AND redacted_by IS NULL AND status <> $3 ORDER BY event_nid DESC LIMIT $4`,
		roomID, sender, int(roommodel.Rejected), limit)
}
