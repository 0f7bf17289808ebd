package store

import (
	"context"
	"strconv"

	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
)

// EventNIDsByID maps the stored events among ids to their numeric IDs,
// without reading their JSON: a join that has just stored the tens of
// thousands of state events of a send_join answer needs their NIDs for
// the state snapshot, not the events again (issue 14 item 12).
func (db *DB) EventNIDsByID(ctx context.Context, ids []string) (map[string]int64, error) {
	return db.eventNIDsByID(ctx, ids, false)
}

// AcceptedEventNIDsByID is EventNIDsByID without the rejected events.
func (db *DB) AcceptedEventNIDsByID(ctx context.Context, ids []string) (map[string]int64, error) {
	return db.eventNIDsByID(ctx, ids, true)
}

func (db *DB) eventNIDsByID(ctx context.Context, ids []string, acceptedOnly bool) (map[string]int64, error) {
	out := make(map[string]int64, len(ids))
	_, err := inChunks(ids, func(chunk []string) ([]struct{}, error) {
		args := inArgs(chunk)
		q := `SELECT event_id, event_nid FROM events WHERE event_id IN (` + placeholders(len(args), 1) + `)`
		if acceptedOnly {
			q += ` AND status <> $` + strconv.Itoa(len(args)+1)
			args = append(args, int(roommodel.Rejected))
		}
		rows, err := db.r().query(ctx, q, args...)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			var nid int64
			if err := rows.Scan(&id, &nid); err != nil {
				return nil, err
			}
			out[id] = nid
		}
		return nil, rows.Err()
	})
	return out, err
}
