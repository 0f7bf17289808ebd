package store

import "context"

// batchRooms bounds the room IDs bound in one query.
const batchRooms = 500

// LastPosOfTypesIn is, for each of many rooms, the stream position of
// its last accepted event at or before upto whose type is one of types:
// sliding sync's bump_stamp. One query per batchRooms rooms; rooms
// without such an event are left out.
func (db *DB) LastPosOfTypesIn(ctx context.Context, roomIDs, types []string, upto int64) (map[string]int64, error) {
	lead := []any{upto}
	for _, t := range types {
		lead = append(lead, t)
	}
	return db.perRoomInt64(ctx, roomIDs, lead, func(n int) string {
		return `SELECT room_id, MAX(stream_pos) FROM events WHERE stream_pos <= $1 AND status = 0
			AND type IN (` + placeholders(len(types), 2) + `) AND room_id IN (` + placeholders(n, 2+len(types)) + `) GROUP BY room_id`
	})
}

// CurrentStateNIDsIn is the event NID of one state key in the current
// state of each of many rooms (rooms without it are left out).
func (db *DB) CurrentStateNIDsIn(ctx context.Context, roomIDs []string, typ, stateKey string) (map[string]int64, error) {
	return db.perRoomInt64(ctx, roomIDs, []any{typ, stateKey}, func(n int) string {
		return `SELECT room_id, event_nid FROM current_state WHERE type = $1 AND state_key = $2
			AND room_id IN (` + placeholders(n, 3) + `)`
	})
}

// perRoomInt64 runs a query answering (room_id, number) rows for many
// rooms, batchRooms at a time: query(n) is the SQL for n rooms, whose
// room placeholders follow the lead arguments.
func (db *DB) perRoomInt64(ctx context.Context, roomIDs []string, lead []any, query func(n int) string) (map[string]int64, error) {
	out := make(map[string]int64, len(roomIDs))
	for len(roomIDs) > 0 {
		n := min(len(roomIDs), batchRooms)
		args := append([]any(nil), lead...)
		for _, r := range roomIDs[:n] {
			args = append(args, r)
		}
		rows, err := db.r().query(ctx, query(n), args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id string
			var v int64
			if err := rows.Scan(&id, &v); err != nil {
				rows.Close()
				return nil, err
			}
			out[id] = v
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
		roomIDs = roomIDs[n:]
	}
	return out, nil
}
