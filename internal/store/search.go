package store

import (
	"context"
	"database/sql"
	"strconv"
)

// SearchEntry is one event in the full-text index: the searched field
// (Key: content.body, content.name or content.topic) and its text.
type SearchEntry struct {
	EventNID  int64
	Key       string
	RoomID    string
	Sender    string
	StreamPos int64
	OriginTS  int64
	Value     string
}

// SearchQuery asks the index for events whose text holds every word (as
// a prefix), in Rooms, with one of Keys (all when empty).
type SearchQuery struct {
	Words []string
	Rooms []string
	Keys  []string
	// Recent orders by stream position, newest first, continuing below
	// Before (0: from the newest); otherwise by rank, skipping Offset.
	Recent bool
	Before int64
	Offset int
	Limit  int
}

// SearchHit is an event the index found.
type SearchHit struct {
	EventNID  int64
	StreamPos int64
	Rank      float64
}

// searchableTypes are the event types the indexer reads: the indexed
// ones and redactions, which remove their target.
const searchableTypes = `('m.room.message', 'm.room.name', 'm.room.topic', 'm.room.redaction')`

// SearchPosition is how far the indexer has read the stream: forward to
// high and, for backfilled history, down to low.
func (db *DB) SearchPosition(ctx context.Context) (high, low int64, err error) {
	err = db.r().queryRow(ctx, `SELECT high, low FROM search_position WHERE id = 1`, nil, &high, &low)
	return high, low, err
}

// SearchableEvents returns up to limit accepted events of the searchable
// types with after < stream_pos <= upto, oldest first.
func (db *DB) SearchableEvents(ctx context.Context, after, upto int64, limit int) ([]EventRow, error) {
	return db.r().scanEvents(ctx, `SELECT `+eventColumns+` FROM events WHERE stream_pos > $1 AND stream_pos <= $2
		AND status = 0 AND type IN `+searchableTypes+` ORDER BY stream_pos LIMIT $3`, after, upto, limit)
}

// BackfilledSearchableEvents returns up to limit accepted events of the
// searchable types below stream position before, newest first: history
// backfilled since the indexer last looked.
func (db *DB) BackfilledSearchableEvents(ctx context.Context, before int64, limit int) ([]EventRow, error) {
	return db.r().scanEvents(ctx, `SELECT `+eventColumns+` FROM events WHERE stream_pos < $1
		AND status = 0 AND type IN `+searchableTypes+` ORDER BY stream_pos DESC LIMIT $2`, before, limit)
}

// IndexSearch adds entries to the index, removes the events redacted by
// the IDs in remove, and records the new position, in one transaction.
func (db *DB) IndexSearch(ctx context.Context, add []SearchEntry, remove []string, high, low int64) error {
	// One multi-row INSERT per chunk, not one per entry: SQLite's FTS5
	// writes what it holds in memory as a new segment of the index at
	// the start of every statement that reaches it (the trigger's
	// savepoint), so that an INSERT per entry made a segment per event
	// and the merging of them all.
	args := make([]any, 0, len(add)*7)
	for _, e := range add {
		args = append(args, e.EventNID, e.Key, e.RoomID, e.Sender, e.StreamPos, e.OriginTS, e.Value)
	}
	return db.tx(ctx, func(c conn) error {
		if err := execRows(ctx, c, `INSERT INTO search_events (event_nid, key, room_id, sender, stream_pos, origin_ts, value) VALUES `, 7,
			` ON CONFLICT (event_nid) DO NOTHING`, args); err != nil {
			return err
		}
		for _, id := range remove {
			if _, err := c.exec(ctx, `DELETE FROM search_events WHERE event_nid IN (SELECT event_nid FROM events WHERE event_id = $1)`, id); err != nil {
				return err
			}
		}
		_, err := c.exec(ctx, `UPDATE search_position SET high = $1, low = $2 WHERE id = 1`, high, low)
		return err
	})
}

// searchWhere builds the FROM and WHERE of a search query; the rank is
// the dialect's. Redacted events are never found, even before the
// indexer has removed them.
func (db *DB) searchWhere(q SearchQuery) (from string, args []any) {
	join, match, _ := searchSQL(db.dialect)
	rooms := inArgs(q.Rooms)
	args = append([]any{searchQuery(db.dialect, q.Words)}, rooms...)
	from = ` FROM search_events s ` + join + ` JOIN events e ON e.event_nid = s.event_nid
		WHERE ` + match + ` AND e.redacted_by IS NULL AND s.room_id IN (` + placeholders(len(rooms), 2) + `)`
	if len(q.Keys) > 0 {
		keys := inArgs(q.Keys)
		from += ` AND s.key IN (` + placeholders(len(keys), len(args)+1) + `)`
		args = append(args, keys...)
	}
	return from, args
}

// SearchEvents runs a search. A query without words or rooms finds
// nothing.
func (db *DB) SearchEvents(ctx context.Context, q SearchQuery) ([]SearchHit, error) {
	if len(q.Words) == 0 || len(q.Rooms) == 0 {
		return nil, nil
	}
	_, _, rank := searchSQL(db.dialect)
	from, args := db.searchWhere(q)
	order := ` ORDER BY score DESC, s.stream_pos DESC`
	if q.Recent {
		order = ` ORDER BY s.stream_pos DESC`
		if q.Before != 0 {
			from += ` AND s.stream_pos < $` + strconv.Itoa(len(args)+1)
			args = append(args, q.Before)
		}
	}
	query := `SELECT s.event_nid, s.stream_pos, ` + rank + ` AS score` + from + order +
		` LIMIT $` + strconv.Itoa(len(args)+1) + ` OFFSET $` + strconv.Itoa(len(args)+2)
	args = append(args, q.Limit, q.Offset)
	return collect(ctx, db.r(), func(scan func(...any) error) (SearchHit, error) {
		var h SearchHit
		var r sql.NullFloat64
		err := scan(&h.EventNID, &h.StreamPos, &r)
		h.Rank = r.Float64
		return h, err
	}, query, args...)
}

// CountSearch counts the events a search finds, before history
// visibility is applied (the spec's count is an approximation).
func (db *DB) CountSearch(ctx context.Context, q SearchQuery) (int64, error) {
	if len(q.Words) == 0 || len(q.Rooms) == 0 {
		return 0, nil
	}
	from, args := db.searchWhere(q)
	var n int64
	err := db.r().queryRow(ctx, `SELECT COUNT(*)`+from, args, &n)
	return n, err
}

// ResetSearchIndex empties the full-text index, so that the indexer
// rebuilds it from every stored event on its next start.
func (db *DB) ResetSearchIndex(ctx context.Context) error {
	return db.tx(ctx, func(c conn) error {
		if _, err := c.exec(ctx, `DELETE FROM search_events`); err != nil {
			return err
		}
		_, err := c.exec(ctx, `UPDATE search_position SET high = 0, low = 0 WHERE id = 1`)
		return err
	})
}
