package store

import (
	"context"
)

// EventJSONRow is an event as stored, for answers that pass events on
// without reading them: the send_join answer, /state and the auth chains
// serve tens of thousands of events, and parsing each into a PDU only to
// marshal it again was most of a big-room join's cost (issue 14).
type EventJSONRow struct {
	NID     int64
	EventID string
	RoomID  string
	// Redacted is set for an event whose redaction was accepted but whose
	// stored JSON is not pruned yet: its JSON is not what is served.
	Redacted bool
	JSON     []byte
}

const eventJSONColumns = `event_nid, event_id, room_id, redacted_by IS NOT NULL AND pruned = FALSE, json`

func scanEventJSON(scan func(...any) error) (EventJSONRow, error) {
	var e EventJSONRow
	err := scan(&e.NID, &e.EventID, &e.RoomID, &e.Redacted, &e.JSON)
	return e, err
}

// EventJSONByNID loads the stored JSON of events by NID, in no particular
// order; unknown NIDs are skipped.
func (db *DB) EventJSONByNID(ctx context.Context, nids []int64) ([]EventJSONRow, error) {
	return inChunks(nids, func(chunk []int64) ([]EventJSONRow, error) {
		args := inArgs(chunk)
		return collect(ctx, db.r(), scanEventJSON, `SELECT `+eventJSONColumns+` FROM events WHERE event_nid IN (`+placeholders(len(args), 1)+`)`, args...)
	})
}

// EventJSONByID loads the stored JSON of events by event ID, in no
// particular order; unknown IDs are skipped.
func (db *DB) EventJSONByID(ctx context.Context, ids []string) ([]EventJSONRow, error) {
	return inChunks(ids, func(chunk []string) ([]EventJSONRow, error) {
		args := inArgs(chunk)
		return collect(ctx, db.r(), scanEventJSON, `SELECT `+eventJSONColumns+` FROM events WHERE event_id IN (`+placeholders(len(args), 1)+`)`, args...)
	})
}

// MembershipsByNID reads the membership of m.room.member events by NID
// from the column stored beside each ("" when the event has none); NIDs
// of other or unknown events are not in the map. The servers in a room
// and its heroes need no more of a member event, and a room of 10,000
// members parsed 10,000 events for them at each federation request
// (issue 14).
func (db *DB) MembershipsByNID(ctx context.Context, nids []int64) (map[int64]string, error) {
	out := make(map[int64]string, len(nids))
	_, err := inChunks(nids, func(chunk []int64) ([]struct{}, error) {
		args := inArgs(chunk)
		rows, err := db.r().query(ctx, `SELECT event_nid, COALESCE(membership, '') FROM events
			WHERE type = 'm.room.member' AND event_nid IN (`+placeholders(len(args), 1)+`)`, args...)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		for rows.Next() {
			var nid int64
			var m string
			if err := rows.Scan(&nid, &m); err != nil {
				return nil, err
			}
			out[nid] = m
		}
		return nil, rows.Err()
	})
	return out, err
}
