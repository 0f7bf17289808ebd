package store

import (
	"context"
	"strconv"
)

// Relations are between accepted events that are not redacted: a
// redaction removes m.relates_to, so a redacted child no longer relates
// to its parent (as Synapse, which deletes its relation row).

// RelationQuery selects the accepted children of an event (the events
// whose m.relates_to points at it) in one room, by stream position.
type RelationQuery struct {
	RoomID string
	Parent string
	// RelType and EventType, when set, keep only children with that
	// rel_type and event type.
	RelType   string
	EventType string
	// Depth is how many relation hops to follow: 1 for direct children,
	// more to include relations of relations.
	Depth int
	// After < stream_pos <= Upto.
	After, Upto int64
	Limit       int
	// Backwards returns the newest first, otherwise the oldest first.
	Backwards bool
}

// RelatedEvents returns the children of an event matching q.
func (db *DB) RelatedEvents(ctx context.Context, q RelationQuery) ([]EventRow, error) {
	order := "ASC"
	if q.Backwards {
		order = "DESC"
	}
	args := []any{q.Parent, q.RoomID, q.After, q.Upto, q.Limit}
	var where string
	if q.RelType != "" {
		args = append(args, q.RelType)
		where += ` AND rel_type = $` + strconv.Itoa(len(args))
	}
	if q.EventType != "" {
		args = append(args, q.EventType)
		where += ` AND type = $` + strconv.Itoa(len(args))
	}
	cond := `relates_to = $1`
	prefix := ""
	if q.Depth > 1 {
		// The relation tree up to Depth hops; the filters apply to the
		// events found, not to the hops that lead to them.
		args = append(args, q.Depth)
		prefix = `WITH RECURSIVE related (event_id, depth) AS (
			SELECT event_id, 1 FROM events WHERE relates_to = $1 AND room_id = $2 AND status = 0 AND redacted_by IS NULL
			UNION
			SELECT e.event_id, r.depth + 1 FROM events e JOIN related r ON e.relates_to = r.event_id
			WHERE r.depth < $` + strconv.Itoa(len(args)) + ` AND e.room_id = $2 AND e.status = 0 AND e.redacted_by IS NULL
		) `
		cond = `event_id IN (SELECT event_id FROM related)`
	}
	return db.r().scanEvents(ctx, prefix+`SELECT `+eventColumns+` FROM events
		WHERE `+cond+` AND room_id = $2 AND status = 0 AND redacted_by IS NULL AND stream_pos > $3 AND stream_pos <= $4`+where+`
		ORDER BY stream_pos `+order+` LIMIT $5`, args...)
}

// ThreadRoot is a thread of a room and the stream position of its latest
// event.
type ThreadRoot struct {
	RootID    string
	LatestPos int64
}

// ThreadRoots lists a room's threads (the targets of accepted m.thread
// relations), the most recently active first. Only thread events at or
// before upto count; threads whose latest such event is after before are
// left out, so that before pages through the list. With participant set,
// only threads that user started or posted in are listed.
func (db *DB) ThreadRoots(ctx context.Context, roomID string, upto, before int64, participant string, limit int) ([]ThreadRoot, error) {
	args := []any{roomID, upto, before, limit}
	having := ``
	if participant != "" {
		args = append(args, participant)
		having = ` AND (SUM(CASE WHEN t.sender = $5 THEN 1 ELSE 0 END) > 0
			OR EXISTS (SELECT 1 FROM events r WHERE r.event_id = t.relates_to AND r.sender = $5))`
	}
	return collect(ctx, db.r(), func(scan func(...any) error) (ThreadRoot, error) {
		var t ThreadRoot
		err := scan(&t.RootID, &t.LatestPos)
		return t, err
	}, `SELECT t.relates_to, MAX(t.stream_pos) AS latest FROM events t
		WHERE t.room_id = $1 AND t.rel_type = 'm.thread' AND t.status = 0 AND t.redacted_by IS NULL AND t.stream_pos IS NOT NULL AND t.stream_pos <= $2
		GROUP BY t.relates_to
		HAVING MAX(t.stream_pos) <= $3`+having+`
		ORDER BY latest DESC LIMIT $4`, args...)
}

// RelationChild is one accepted child of an event, for aggregations.
type RelationChild struct {
	Parent   string
	RelType  string
	NID      int64
	EventID  string
	RoomID   string
	Sender   string
	Type     string
	IsState  bool
	OriginTS int64
}

// RelationChildren lists the accepted children of the parents with one
// of relTypes, oldest first.
func (db *DB) RelationChildren(ctx context.Context, parents []string, relTypes ...string) ([]RelationChild, error) {
	return inChunks(parents, func(chunk []string) ([]RelationChild, error) {
		parents, types := inArgs(chunk), inArgs(relTypes)
		args := append(parents, types...)
		return collect(ctx, db.r(), func(scan func(...any) error) (RelationChild, error) {
			var c RelationChild
			err := scan(&c.Parent, &c.RelType, &c.NID, &c.EventID, &c.RoomID, &c.Sender, &c.Type, &c.IsState, &c.OriginTS)
			return c, err
		}, `SELECT relates_to, rel_type, event_nid, event_id, room_id, sender, type, state_key IS NOT NULL, origin_ts
			FROM events WHERE relates_to IN (`+placeholders(len(parents), 1)+`) AND rel_type IN (`+placeholders(len(types), len(parents)+1)+`)
			AND status = 0 AND redacted_by IS NULL AND stream_pos IS NOT NULL ORDER BY stream_pos`, args...)
	})
}

// ThreadSummary is the aggregate of a thread's accepted events.
type ThreadSummary struct {
	Root   string
	RoomID string
	Count  int64
	// Mine counts the thread events sent by the user asked about.
	Mine int64
	// LatestNID is the thread's newest event.
	LatestNID int64
}

// ThreadSummaries summarises the threads rooted at roots.
func (db *DB) ThreadSummaries(ctx context.Context, roots []string, userID string) ([]ThreadSummary, error) {
	return inChunks(roots, func(chunk []string) ([]ThreadSummary, error) {
		args := append([]any{userID}, inArgs(chunk)...)
		return collect(ctx, db.r(), func(scan func(...any) error) (ThreadSummary, error) {
			var s ThreadSummary
			err := scan(&s.Root, &s.RoomID, &s.Count, &s.Mine, &s.LatestNID)
			return s, err
		}, `SELECT s.relates_to, s.room_id, s.cnt, s.mine, e.event_nid FROM (
				SELECT relates_to, room_id, COUNT(*) AS cnt, SUM(CASE WHEN sender = $1 THEN 1 ELSE 0 END) AS mine, MAX(stream_pos) AS latest
				FROM events WHERE relates_to IN (`+placeholders(len(args)-1, 2)+`) AND rel_type = 'm.thread' AND status = 0 AND redacted_by IS NULL AND stream_pos IS NOT NULL
				GROUP BY relates_to, room_id
			) s JOIN events e ON e.stream_pos = s.latest`, args...)
	})
}

// EventsByTimestamp returns a room's accepted events at or before upto
// from a point in (origin_ts, stream_pos) order: forwards, those after
// (ts, pos) oldest first; backwards, those before it newest first.
func (db *DB) EventsByTimestamp(ctx context.Context, roomID string, ts, pos, upto int64, limit int, backwards bool) ([]EventRow, error) {
	if backwards {
		return db.r().scanEvents(ctx, `SELECT `+eventColumns+` FROM events
			WHERE room_id = $1 AND origin_ts <= $2 AND (origin_ts < $2 OR stream_pos < $3) AND stream_pos <= $4 AND status = 0
			ORDER BY origin_ts DESC, stream_pos DESC LIMIT $5`, roomID, ts, pos, upto, limit)
	}
	return db.r().scanEvents(ctx, `SELECT `+eventColumns+` FROM events
		WHERE room_id = $1 AND origin_ts >= $2 AND (origin_ts > $2 OR stream_pos > $3) AND stream_pos <= $4 AND status = 0
		ORDER BY origin_ts ASC, stream_pos ASC LIMIT $5`, roomID, ts, pos, upto, limit)
}
