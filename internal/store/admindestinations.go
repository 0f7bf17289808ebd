package store

import (
	"context"
	"strings"
)

// The federation admin API's storage: which servers this one federates
// with, and their delivery back-off (federation_destinations).

// DestinationRow is a destination's back-off as stored, and the stream
// position of the last event delivered to it (0: none yet).
type DestinationRow struct {
	Destination string
	DestinationState
	LastSuccessfulStreamOrdering int64
}

// DestinationRows lists the destinations recorded: those in back-off
// (Failures > 0) and those events were delivered to.
func (db *DB) DestinationRows(ctx context.Context) ([]DestinationRow, error) {
	return collect(ctx, db.r(), func(scan func(...any) error) (DestinationRow, error) {
		var d DestinationRow
		err := scan(&d.Destination, &d.Failures, &d.RetryAfterTS, &d.FailureTS, &d.RetryLastTS, &d.LastSuccessfulStreamOrdering)
		return d, err
	}, `SELECT destination, failures, retry_after_ts, failure_ts, retry_last_ts, last_successful_stream_ordering FROM federation_destinations`)
}

// JoinedMemberServers lists the server names of every joined member of
// every room (once each), the servers events are sent to.
func (db *DB) JoinedMemberServers(ctx context.Context) ([]string, error) {
	ids, err := db.r().strings(ctx, `SELECT DISTINCT state_key FROM current_state WHERE type = 'm.room.member' AND membership = 'join'`)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, id := range ids {
		if _, server, ok := strings.Cut(id, ":"); ok && !seen[server] {
			seen[server] = true
			out = append(out, server)
		}
	}
	return out, nil
}

// RoomsWithServer lists the rooms where a server has joined members.
func (db *DB) RoomsWithServer(ctx context.Context, server string) ([]string, error) {
	type row struct{ room, user string }
	rows, err := collect(ctx, db.r(), func(scan func(...any) error) (row, error) {
		var r row
		err := scan(&r.room, &r.user)
		return r, err
	}, `SELECT room_id, state_key FROM current_state WHERE type = 'm.room.member' AND membership = 'join' AND state_key LIKE $1`,
		"%:"+likeEscape(server))
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, r := range rows {
		// LIKE matched a suffix; the server is what follows the first colon.
		if _, s, _ := strings.Cut(r.user, ":"); s == server && !seen[r.room] {
			seen[r.room] = true
			out = append(out, r.room)
		}
	}
	return out, nil
}

// likeEscape turns LIKE's wildcards in a server name (which valid names
// never hold) into the one-character wildcard, which still matches them;
// the exact comparison after the query is what counts.
func likeEscape(s string) string {
	return strings.NewReplacer("%", "_", "\\", "_").Replace(s)
}

// DestinationRoomPositions is, by room, the stream position of the last
// event of the room delivered to a destination.
func (db *DB) DestinationRoomPositions(ctx context.Context, destination string) (map[string]int64, error) {
	type roomPos struct {
		room string
		pos  int64
	}
	rows, err := collect(ctx, db.r(), func(scan func(...any) error) (roomPos, error) {
		var r roomPos
		err := scan(&r.room, &r.pos)
		return r, err
	}, `SELECT room_id, stream_ordering FROM federation_destination_rooms WHERE destination = $1`, destination)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(rows))
	for _, r := range rows {
		out[r.room] = r.pos
	}
	return out, nil
}
