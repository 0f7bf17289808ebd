package store

import (
	"context"
	"errors"
)

// CurrentMembership is a user's membership in a room's current state
// ("" when the user has none or the room is unknown).
func (db *DB) CurrentMembership(ctx context.Context, roomID, userID string) (string, error) {
	var m *string
	err := db.r().queryRow(ctx, `SELECT membership FROM current_state WHERE room_id = $1 AND type = 'm.room.member' AND state_key = $2`,
		[]any{roomID, userID}, &m)
	if errors.Is(err, ErrNotFound) || m == nil {
		return "", nil
	}
	return *m, err
}

// RoomMembership is one room and a user's membership in it.
type RoomMembership struct {
	RoomID     string
	Membership string
	EventNID   int64
	// StreamPos is the membership event's stream position (MembershipsOf
	// only; 0 for an outlier), so that a sync up to an older position
	// reads only the events of memberships that changed after it.
	StreamPos int64
}

// MembershipsOf lists the rooms where a user has a membership in the
// current state (any of memberships, all when empty).
func (db *DB) MembershipsOf(ctx context.Context, userID string, memberships ...string) ([]RoomMembership, error) {
	q := `SELECT cs.room_id, cs.membership, cs.event_nid, COALESCE(e.stream_pos, 0) FROM current_state cs
		JOIN events e ON e.event_nid = cs.event_nid WHERE cs.type = 'm.room.member' AND cs.state_key = $1`
	args := []any{userID}
	if len(memberships) > 0 {
		in := inArgs(memberships)
		q += ` AND cs.membership IN (` + placeholders(len(in), 2) + `)`
		args = append(args, in...)
	}
	return collect(ctx, db.r(), func(scan func(...any) error) (RoomMembership, error) {
		var m RoomMembership
		err := scan(&m.RoomID, &m.Membership, &m.EventNID, &m.StreamPos)
		return m, err
	}, q+` ORDER BY cs.room_id`, args...)
}

// JoinedMembers lists the joined members of a room's current state.
func (db *DB) JoinedMembers(ctx context.Context, roomID string) ([]string, error) {
	return db.r().strings(ctx, `SELECT state_key FROM current_state WHERE room_id = $1 AND type = 'm.room.member' AND membership = 'join' ORDER BY state_key`, roomID)
}

// RoomEvents returns the NIDs of a room's accepted events with after <
// stream_pos <= upto, the newest first when backwards is set, the oldest
// first otherwise. Callers take the events themselves from the engine's
// cache, so the JSON is not read here.
func (db *DB) RoomEvents(ctx context.Context, roomID string, after, upto int64, limit int, backwards bool) ([]int64, error) {
	order := "ASC"
	if backwards {
		order = "DESC"
	}
	return collect(ctx, db.r(), one[int64], `SELECT event_nid FROM events
		WHERE room_id = $1 AND stream_pos > $2 AND stream_pos <= $3 AND status = 0
		ORDER BY stream_pos `+order+` LIMIT $4`, roomID, after, upto, limit)
}

// RoomsWithEvents lists the rooms with accepted events in (after, upto].
func (db *DB) RoomsWithEvents(ctx context.Context, after, upto int64) ([]string, error) {
	return db.r().strings(ctx, `SELECT DISTINCT room_id FROM events WHERE stream_pos > $1 AND stream_pos <= $2 AND status = 0`, after, upto)
}

// MembershipChanges lists the accepted m.room.member events about a user
// in (after, upto], oldest first.
func (db *DB) MembershipChanges(ctx context.Context, userID string, after, upto int64) ([]EventRow, error) {
	return db.r().scanEvents(ctx, `SELECT `+eventColumns+` FROM events
		WHERE type = 'm.room.member' AND state_key = $1 AND stream_pos > $2 AND stream_pos <= $3 AND status = 0
		ORDER BY stream_pos`, userID, after, upto)
}

// LastEventAtOrBefore returns a room's last accepted event at or before
// a stream position (its state_after is the room's state then).
func (db *DB) LastEventAtOrBefore(ctx context.Context, roomID string, pos int64) (EventRow, error) {
	rows, err := db.r().scanEvents(ctx, `SELECT `+eventColumns+` FROM events
		WHERE room_id = $1 AND stream_pos <= $2 AND status = 0 ORDER BY stream_pos DESC LIMIT 1`, roomID, pos)
	if err != nil {
		return EventRow{}, err
	}
	if len(rows) == 0 {
		return EventRow{}, ErrNotFound
	}
	return rows[0], nil
}

// StateAfterAtOrBefore is the state_after of a room's last accepted
// event at or before pos: LastEventAtOrBefore without reading the
// event, which every woken /sync asks for, for every room it answers
// (ErrNotFound before the room).
func (db *DB) StateAfterAtOrBefore(ctx context.Context, roomID string, pos int64) (int64, error) {
	var state int64
	err := db.r().queryRow(ctx, `SELECT state_after FROM events
		WHERE room_id = $1 AND stream_pos <= $2 AND status = 0 ORDER BY stream_pos DESC LIMIT 1`, []any{roomID, pos}, &state)
	return state, err
}

// MemberCounts counts a room's joined and invited members.
func (db *DB) MemberCounts(ctx context.Context, roomID string) (joined, invited int64, err error) {
	rows, err := db.r().query(ctx, `SELECT membership, COUNT(*) FROM current_state WHERE room_id = $1 AND type = 'm.room.member'
		AND membership IN ('join', 'invite') GROUP BY membership`, roomID)
	if err != nil {
		return 0, 0, err
	}
	defer rows.Close()
	for rows.Next() {
		var m string
		var n int64
		if err := rows.Scan(&m, &n); err != nil {
			return 0, 0, err
		}
		if m == "join" {
			joined = n
		} else {
			invited = n
		}
	}
	return joined, invited, rows.Err()
}

// RoomMembers lists (user, membership) of a room's current state in user
// order, for heroes and /members.
func (db *DB) RoomMembers(ctx context.Context, roomID string) ([]RoomMembership, error) {
	// RoomID holds the member's user ID here.
	return collect(ctx, db.r(), scanMembership, `SELECT state_key, COALESCE(membership, ''), event_nid FROM current_state
		WHERE room_id = $1 AND type = 'm.room.member' ORDER BY state_key`, roomID)
}

func scanMembership(scan func(...any) error) (RoomMembership, error) {
	var m RoomMembership
	err := scan(&m.RoomID, &m.Membership, &m.EventNID)
	return m, err
}

// ForgetRoom hides a left room from a user's sync.
func (db *DB) ForgetRoom(ctx context.Context, userID, roomID string) error {
	_, err := db.w().exec(ctx, `INSERT INTO forgotten_rooms (user_id, room_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, userID, roomID)
	return err
}

// UnforgetRoom clears the forgotten flag (when the user rejoins).
func (db *DB) UnforgetRoom(ctx context.Context, userID, roomID string) error {
	_, err := db.w().exec(ctx, `DELETE FROM forgotten_rooms WHERE user_id = $1 AND room_id = $2`, userID, roomID)
	return err
}

// RoomForgotten reports whether a user forgot a room.
func (db *DB) RoomForgotten(ctx context.Context, userID, roomID string) (bool, error) {
	ids, err := db.r().strings(ctx, `SELECT room_id FROM forgotten_rooms WHERE user_id = $1 AND room_id = $2`, userID, roomID)
	return len(ids) > 0, err
}

// ForgottenRooms lists the rooms a user forgot.
func (db *DB) ForgottenRooms(ctx context.Context, userID string) (map[string]bool, error) {
	ids, err := db.r().strings(ctx, `SELECT room_id FROM forgotten_rooms WHERE user_id = $1`, userID)
	out := make(map[string]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out, err
}

// CreateFilter stores a sync filter and returns its ID.
func (db *DB) CreateFilter(ctx context.Context, localpart, filterJSON string) (int64, error) {
	var id int64
	err := db.w().queryRow(ctx, `INSERT INTO filters (localpart, json) VALUES ($1, $2) RETURNING filter_id`, []any{localpart, filterJSON}, &id)
	return id, err
}

// GetFilter loads a user's filter.
func (db *DB) GetFilter(ctx context.Context, localpart string, id int64) (string, error) {
	var j string
	err := db.r().queryRow(ctx, `SELECT json FROM filters WHERE localpart = $1 AND filter_id = $2`, []any{localpart, id}, &j)
	return j, err
}

// RoomHasRelations reports whether any event of a room relates to another.
func (db *DB) RoomHasRelations(ctx context.Context, roomID string) (bool, error) {
	var n int
	err := db.r().queryRow(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM events WHERE room_id = $1 AND relates_to IS NOT NULL LIMIT 1) AS r`, []any{roomID}, &n)
	return n > 0, err
}
