package store

import (
	"context"
	"database/sql"
	"errors"
	"strings"
)

// ServerKey is one verify key of another server.
type ServerKey struct {
	ServerName   string
	KeyID        string
	VerifyKey    string // unpadded base64
	ValidUntilTS int64
	// ExpiredTS is set for old_verify_keys: when the key stopped being used.
	ExpiredTS int64
}

// StoreServerKeys caches verify keys of other servers. A key already
// known is overwritten: a newer answer extends its validity.
func (db *DB) StoreServerKeys(ctx context.Context, keys []ServerKey) error {
	return db.tx(ctx, func(c conn) error {
		for _, k := range keys {
			if _, err := c.exec(ctx, `INSERT INTO server_keys (server_name, key_id, verify_key, valid_until_ts, expired_ts)
				VALUES ($1, $2, $3, $4, $5)
				ON CONFLICT (server_name, key_id) DO UPDATE SET verify_key = excluded.verify_key,
					valid_until_ts = excluded.valid_until_ts, expired_ts = excluded.expired_ts`,
				k.ServerName, k.KeyID, k.VerifyKey, k.ValidUntilTS, k.ExpiredTS); err != nil {
				return err
			}
		}
		return nil
	})
}

// ServerKeys returns the cached keys of a server.
func (db *DB) ServerKeys(ctx context.Context, serverName string) ([]ServerKey, error) {
	return collect(ctx, db.r(), func(scan func(...any) error) (ServerKey, error) {
		var k ServerKey
		err := scan(&k.ServerName, &k.KeyID, &k.VerifyKey, &k.ValidUntilTS, &k.ExpiredTS)
		return k, err
	}, `SELECT server_name, key_id, verify_key, valid_until_ts, expired_ts FROM server_keys WHERE server_name = $1`, serverName)
}

// StoreServerKeyResponse keeps a server's own signed key answer, which
// the notary endpoint hands on.
func (db *DB) StoreServerKeyResponse(ctx context.Context, serverName string, validUntil int64, response []byte) error {
	_, err := db.w().exec(ctx, `INSERT INTO server_key_responses (server_name, valid_until_ts, response) VALUES ($1, $2, $3)
		ON CONFLICT (server_name) DO UPDATE SET valid_until_ts = excluded.valid_until_ts, response = excluded.response`,
		serverName, validUntil, string(response))
	return err
}

// ServerKeyResponse returns the last signed key answer of a server.
func (db *DB) ServerKeyResponse(ctx context.Context, serverName string) (validUntil int64, response []byte, err error) {
	var s string
	err = db.r().queryRow(ctx, `SELECT valid_until_ts, response FROM server_key_responses WHERE server_name = $1`,
		[]any{serverName}, &validUntil, &s)
	return validUntil, []byte(s), err
}

// InboundTxn returns the answer given to a transaction already processed.
func (db *DB) InboundTxn(ctx context.Context, origin, txnID string) ([]byte, bool, error) {
	var s string
	err := db.r().queryRow(ctx, `SELECT response FROM federation_inbound_txns WHERE origin = $1 AND txn_id = $2`,
		[]any{origin, txnID}, &s)
	if errors.Is(err, ErrNotFound) {
		return nil, false, nil
	}
	return []byte(s), err == nil, err
}

// RecordInboundTxn remembers the answer to a processed transaction.
func (db *DB) RecordInboundTxn(ctx context.Context, origin, txnID string, response []byte, ts int64) error {
	_, err := db.w().exec(ctx, `INSERT INTO federation_inbound_txns (origin, txn_id, response, received_ts) VALUES ($1, $2, $3, $4)
		ON CONFLICT (origin, txn_id) DO NOTHING`, origin, txnID, string(response), ts)
	return err
}

// PruneInboundTxns forgets transactions received before ts.
func (db *DB) PruneInboundTxns(ctx context.Context, ts int64) error {
	_, err := db.w().exec(ctx, `DELETE FROM federation_inbound_txns WHERE received_ts < $1`, ts)
	return err
}

// SenderPosition is how far through the event stream the federation
// sender has queued local events; 0 before it first ran.
func (db *DB) SenderPosition(ctx context.Context) (int64, bool, error) {
	var pos int64
	err := db.r().queryRow(ctx, `SELECT position FROM federation_sender_position WHERE id = 1`, nil, &pos)
	if err == ErrNotFound {
		return 0, false, nil
	}
	return pos, err == nil, err
}

// EventsAfter returns up to limit accepted events with stream positions
// in (after, upto], oldest first.
func (db *DB) EventsAfter(ctx context.Context, after, upto int64, limit int) ([]EventRow, error) {
	return db.r().scanEvents(ctx, `SELECT `+eventColumns+` FROM events
		WHERE stream_pos > $1 AND stream_pos <= $2 AND status = 0 ORDER BY stream_pos LIMIT $3`, after, upto, limit)
}

// QueuedPDU is an event waiting for delivery to a destination.
type QueuedPDU struct {
	QueueID     int64
	Destination string
	RoomID      string
	EventNID    int64
}

// QueuePDUs queues events for delivery and moves the sender's position
// in the same transaction, so that a crash neither loses nor repeats them.
func (db *DB) QueuePDUs(ctx context.Context, pdus []QueuedPDU, position int64) error {
	return db.tx(ctx, func(c conn) error {
		for _, p := range pdus {
			if _, err := c.exec(ctx, `INSERT INTO federation_queue_pdus (destination, room_id, event_nid) VALUES ($1, $2, $3)`,
				p.Destination, p.RoomID, p.EventNID); err != nil {
				return err
			}
		}
		_, err := c.exec(ctx, `INSERT INTO federation_sender_position (id, position) VALUES (1, $1)
			ON CONFLICT (id) DO UPDATE SET position = excluded.position`, position)
		return err
	})
}

// PendingPDUs returns up to limit queued events for a destination, in
// queue order.
func (db *DB) PendingPDUs(ctx context.Context, destination string, limit int) ([]QueuedPDU, error) {
	return collect(ctx, db.r(), func(scan func(...any) error) (QueuedPDU, error) {
		p := QueuedPDU{Destination: destination}
		err := scan(&p.QueueID, &p.RoomID, &p.EventNID)
		return p, err
	}, `SELECT queue_id, room_id, event_nid FROM federation_queue_pdus WHERE destination = $1 ORDER BY queue_id LIMIT $2`,
		destination, limit)
}

// CountPendingPDUs counts the events queued for a destination.
func (db *DB) CountPendingPDUs(ctx context.Context, destination string) (int64, error) {
	var n int64
	err := db.r().queryRow(ctx, `SELECT COUNT(*) FROM federation_queue_pdus WHERE destination = $1`, []any{destination}, &n)
	return n, err
}

// KeepLatestPDUs drops, for a destination that was unreachable, every
// queued event but the newest of each room: the destination fetches the
// gap itself with /get_missing_events when the newest arrives.
func (db *DB) KeepLatestPDUs(ctx context.Context, destination string) error {
	_, err := db.w().exec(ctx, `DELETE FROM federation_queue_pdus WHERE destination = $1 AND queue_id NOT IN (
		SELECT MAX(queue_id) FROM federation_queue_pdus WHERE destination = $1 GROUP BY room_id)`, destination)
	return err
}

// QueuedEDU is an ephemeral event waiting for delivery.
type QueuedEDU struct {
	QueueID int64
	Type    string
	Content string
}

// QueueEDU queues an EDU for several destinations.
func (db *DB) QueueEDU(ctx context.Context, destinations []string, eduType, content string) error {
	return db.tx(ctx, func(c conn) error {
		for _, d := range destinations {
			if _, err := c.exec(ctx, `INSERT INTO federation_queue_edus (destination, edu_type, content) VALUES ($1, $2, $3)`,
				d, eduType, content); err != nil {
				return err
			}
		}
		return nil
	})
}

// PendingEDUs returns up to limit queued EDUs for a destination.
func (db *DB) PendingEDUs(ctx context.Context, destination string, limit int) ([]QueuedEDU, error) {
	return collect(ctx, db.r(), func(scan func(...any) error) (QueuedEDU, error) {
		var e QueuedEDU
		err := scan(&e.QueueID, &e.Type, &e.Content)
		return e, err
	}, `SELECT queue_id, edu_type, content FROM federation_queue_edus WHERE destination = $1 ORDER BY queue_id LIMIT $2`,
		destination, limit)
}

// DropQueuedEDUs removes a destination's queued EDUs of one type (stale
// typing notifications of a destination that was down).
func (db *DB) DropQueuedEDUs(ctx context.Context, destination, eduType string) error {
	_, err := db.w().exec(ctx, `DELETE FROM federation_queue_edus WHERE destination = $1 AND edu_type = $2`, destination, eduType)
	return err
}

// DeleteDelivered removes delivered PDUs and EDUs from a destination's
// queue; the IDs are the highest delivered (queues are sent in order).
//
// With PDUs, it also records the stream position of the newest event
// delivered (the federation admin API's last_successful_stream_ordering,
// as Synapse's destinations table): in the same transaction, so the
// position never names an event still queued.
func (db *DB) DeleteDelivered(ctx context.Context, destination string, lastPDU, lastEDU int64) error {
	return db.tx(ctx, func(c conn) error {
		if lastPDU > 0 {
			if err := recordDelivered(ctx, c, destination, lastPDU); err != nil {
				return err
			}
		}
		if _, err := c.exec(ctx, `DELETE FROM federation_queue_pdus WHERE destination = $1 AND queue_id <= $2`, destination, lastPDU); err != nil {
			return err
		}
		_, err := c.exec(ctx, `DELETE FROM federation_queue_edus WHERE destination = $1 AND queue_id <= $2`, destination, lastEDU)
		return err
	})
}

// recordDelivered records, before the queue entries up to lastPDU go,
// the newest stream position delivered to destination, overall and per
// room; positions never go back.
func recordDelivered(ctx context.Context, c conn, destination string, lastPDU int64) error {
	type roomPos struct {
		room string
		pos  int64
	}
	positions, err := collect(ctx, c, func(scan func(...any) error) (roomPos, error) {
		var r roomPos
		var pos sql.NullInt64
		err := scan(&r.room, &pos)
		r.pos = pos.Int64
		return r, err
	}, `SELECT q.room_id, MAX(e.stream_pos) FROM federation_queue_pdus q JOIN events e ON e.event_nid = q.event_nid
		WHERE q.destination = $1 AND q.queue_id <= $2 GROUP BY q.room_id`, destination, lastPDU)
	if err != nil {
		return err
	}
	var newest int64
	for _, p := range positions {
		if p.pos <= 0 {
			continue
		}
		newest = max(newest, p.pos)
		if _, err := c.exec(ctx, `INSERT INTO federation_destination_rooms (destination, room_id, stream_ordering) VALUES ($1, $2, $3)
			ON CONFLICT (destination, room_id) DO UPDATE SET stream_ordering = CASE
				WHEN excluded.stream_ordering > federation_destination_rooms.stream_ordering
				THEN excluded.stream_ordering ELSE federation_destination_rooms.stream_ordering END`,
			destination, p.room, p.pos); err != nil {
			return err
		}
	}
	if newest == 0 {
		return nil
	}
	_, err = c.exec(ctx, `INSERT INTO federation_destinations (destination, last_successful_stream_ordering) VALUES ($1, $2)
		ON CONFLICT (destination) DO UPDATE SET last_successful_stream_ordering = CASE
			WHEN excluded.last_successful_stream_ordering > federation_destinations.last_successful_stream_ordering
			THEN excluded.last_successful_stream_ordering ELSE federation_destinations.last_successful_stream_ordering END`,
		destination, newest)
	return err
}

// QueuedDestinations lists the destinations with anything queued.
func (db *DB) QueuedDestinations(ctx context.Context) ([]string, error) {
	return db.r().strings(ctx, `SELECT destination FROM federation_queue_pdus
		UNION SELECT destination FROM federation_queue_edus`)
}

// QueueCount is how much waits to be delivered to one destination.
type QueueCount struct {
	PDUs, EDUs int64
}

// QueueCounts is, by destination, what waits in the federation queue;
// destinations with nothing queued are absent. The admin API shows it
// beside each destination's back-off: a backlog that only grows is a
// server unreachable from here.
func (db *DB) QueueCounts(ctx context.Context) (map[string]QueueCount, error) {
	type row struct {
		dest string
		n    int64
	}
	scan := func(scan func(...any) error) (row, error) {
		var r row
		err := scan(&r.dest, &r.n)
		return r, err
	}
	pdus, err := collect(ctx, db.r(), scan, `SELECT destination, COUNT(*) FROM federation_queue_pdus GROUP BY destination`)
	if err != nil {
		return nil, err
	}
	edus, err := collect(ctx, db.r(), scan, `SELECT destination, COUNT(*) FROM federation_queue_edus GROUP BY destination`)
	if err != nil {
		return nil, err
	}
	out := make(map[string]QueueCount, len(pdus)+len(edus))
	for _, r := range pdus {
		c := out[r.dest]
		c.PDUs = r.n
		out[r.dest] = c
	}
	for _, r := range edus {
		c := out[r.dest]
		c.EDUs = r.n
		out[r.dest] = c
	}
	return out, nil
}

// DestinationState is a destination's delivery back-off.
type DestinationState struct {
	Failures     int
	RetryAfterTS int64
	// FailureTS is when the failures began, RetryLastTS the last failed
	// attempt (the federation admin API's retry timings).
	FailureTS, RetryLastTS int64
}

// Destination returns a destination's back-off (zero when it is healthy).
func (db *DB) Destination(ctx context.Context, destination string) (DestinationState, error) {
	var s DestinationState
	err := db.r().queryRow(ctx, `SELECT failures, retry_after_ts, failure_ts, retry_last_ts FROM federation_destinations WHERE destination = $1`,
		[]any{destination}, &s.Failures, &s.RetryAfterTS, &s.FailureTS, &s.RetryLastTS)
	if err == ErrNotFound {
		return DestinationState{}, nil
	}
	return s, err
}

// SetDestination records a destination's back-off; a zero state clears
// it (the row stays for its last_successful_stream_ordering).
func (db *DB) SetDestination(ctx context.Context, destination string, s DestinationState) error {
	if s.Failures == 0 {
		_, err := db.w().exec(ctx, `UPDATE federation_destinations SET failures = 0, retry_after_ts = 0, failure_ts = 0, retry_last_ts = 0
			WHERE destination = $1`, destination)
		return err
	}
	_, err := db.w().exec(ctx, `INSERT INTO federation_destinations (destination, failures, retry_after_ts, failure_ts, retry_last_ts)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (destination) DO UPDATE SET failures = excluded.failures,
		retry_after_ts = excluded.retry_after_ts, failure_ts = excluded.failure_ts, retry_last_ts = excluded.retry_last_ts`,
		destination, s.Failures, s.RetryAfterTS, s.FailureTS, s.RetryLastTS)
	return err
}

// JoinedServers lists the servers with joined members in a room's
// current state.
func (db *DB) JoinedServers(ctx context.Context, roomID string) ([]string, error) {
	members, err := db.JoinedMembers(ctx, roomID)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, m := range members {
		if _, server, ok := strings.Cut(m, ":"); ok && !seen[server] {
			seen[server] = true
			out = append(out, server)
		}
	}
	return out, nil
}

// PersistOutliers stores events without stream positions or state (the
// state and auth chain a remote join returns); events already stored
// are left alone. created, when not 0, first creates the room's row with
// version.
func (db *DB) PersistOutliers(ctx context.Context, version string, created int64, rows []EventRow) error {
	return db.tx(ctx, func(c conn) error {
		if created != 0 && len(rows) > 0 {
			if _, err := c.exec(ctx, `INSERT INTO rooms (room_id, room_version, created_ts) VALUES ($1, $2, $3)
				ON CONFLICT (room_id) DO NOTHING`, rows[0].RoomID, version, created); err != nil {
				return err
			}
		}
		vals := make([][]any, len(rows))
		for i, r := range rows {
			vals[i] = []any{r.EventID, r.RoomID, r.Type, r.StateKey, r.Sender, r.Depth, r.OriginTS, int(r.Status), r.Membership, r.JSON}
		}
		return insertMany(ctx, c, `INSERT INTO events (event_id, room_id, type, state_key, sender, depth, origin_ts,
				status, membership, json)`, `ON CONFLICT (event_id) DO NOTHING`, 10, vals)
	})
}

// CurrentMembershipEvent is a user's membership in a room's current
// state and the event that set it ("" and 0 when none).
func (db *DB) CurrentMembershipEvent(ctx context.Context, roomID, userID string) (string, int64, error) {
	var m *string
	var nid int64
	err := db.r().queryRow(ctx, `SELECT membership, event_nid FROM current_state WHERE room_id = $1 AND type = 'm.room.member' AND state_key = $2`,
		[]any{roomID, userID}, &m, &nid)
	if err == ErrNotFound || m == nil {
		return "", 0, nil
	}
	return *m, nid, err
}

// OldestEvent is the room's event with the lowest stream position.
func (db *DB) OldestEvent(ctx context.Context, roomID string) (string, error) {
	var id string
	err := db.r().queryRow(ctx, `SELECT event_id FROM events WHERE room_id = $1 AND stream_pos IS NOT NULL
		ORDER BY stream_pos LIMIT 1`, []any{roomID}, &id)
	return id, err
}

// MinStreamPos is the lowest stream position stored (backfilled events
// are below zero), 0 when there are none.
func (db *DB) MinStreamPos(ctx context.Context) (int64, error) {
	var pos *int64
	err := db.r().queryRow(ctx, `SELECT MIN(stream_pos) FROM events`, nil, &pos)
	if err != nil || pos == nil {
		return 0, err
	}
	return *pos, nil
}
