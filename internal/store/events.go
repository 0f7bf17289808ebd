package store

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"sync"

	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
)

// EventRow is an event as stored, with the server's bookkeeping.
type EventRow struct {
	NID          int64
	EventID      string
	RoomID       string
	Type         string
	StateKey     *string
	Sender       string
	Depth        int64
	OriginTS     int64
	StreamPos    int64 // 0 for outliers
	StateBefore  int64
	StateAfter   int64
	Status       roommodel.Status // stored as its number
	Membership   *string
	ReplacesNID  int64
	RelatesTo    *string
	RelType      *string
	ContainsURL  bool
	TxnLocalpart *string
	TxnDevice    *string
	TxnID        *string
	RedactedBy   *string
	RedactedTS   int64
	Pruned       bool
	JSON         string
	// OnBehalfOf is the server that handed this event over in a
	// membership handshake; this server forwards it to the room's other
	// servers. Withheld events are not sent to other servers at all.
	OnBehalfOf string
	Withheld   bool

	// TxnScope is the request path between room and txnId ("send/<type>",
	// "redact/<event ID>") that scopes TxnID; it is written, never read.
	TxnScope *string
}

const eventColumns = `event_nid, event_id, room_id, type, state_key, sender, depth, origin_ts, stream_pos, state_before, state_after,
	status, membership, replaces_nid, relates_to, rel_type, contains_url, txn_localpart, txn_device, txn_id,
	redacted_by, redacted_ts, pruned, json, COALESCE(on_behalf_of, ''), withheld`

func scanEvent(scan func(...any) error) (EventRow, error) {
	var e EventRow
	var stream sql.NullInt64
	var status int
	err := scan(&e.NID, &e.EventID, &e.RoomID, &e.Type, &e.StateKey, &e.Sender, &e.Depth, &e.OriginTS, &stream,
		&e.StateBefore, &e.StateAfter, &status, &e.Membership, &e.ReplacesNID, &e.RelatesTo, &e.RelType, &e.ContainsURL,
		&e.TxnLocalpart, &e.TxnDevice, &e.TxnID, &e.RedactedBy, &e.RedactedTS, &e.Pruned, &e.JSON, &e.OnBehalfOf, &e.Withheld)
	e.StreamPos = stream.Int64
	e.Status = roommodel.Status(status)
	return e, err
}

func (c conn) scanEvents(ctx context.Context, query string, args ...any) ([]EventRow, error) {
	return collect(ctx, c, scanEvent, query, args...)
}

// SnapshotDelta describes a new state snapshot: Parent plus Changes. A
// change to event NID -1 means "the event being persisted"; 0 removes
// the key.
type SnapshotDelta struct {
	Parent   int64
	ChainLen int64
	Changes  map[roommodel.StateKey]int64
}

// ThisEvent stands for the NID of the event being persisted in a
// SnapshotDelta or current-state change.
const ThisEvent = -1

// NewEvent is one event to persist with everything that changes with it.
type NewEvent struct {
	Row EventRow
	// RoomVersion is set for the create event, which creates the room.
	RoomVersion string
	// Snapshot, when set, is the event's state_after as a new snapshot.
	Snapshot *SnapshotDelta
	// CurrentState are changes to the room's current state (ThisEvent and
	// 0 as in SnapshotDelta); Memberships gives the membership of changed
	// m.room.member keys.
	CurrentState map[roommodel.StateKey]int64
	Memberships  map[string]string
	// HeadSnapshot is the room's new current state snapshot: 0 keeps it,
	// ThisEvent means the snapshot created for this event.
	HeadSnapshot int64
	Depth        int64
	// Extremities replace the room's forward extremities when not nil.
	Extremities []string
}

// PersistEvent stores an event and, in the same transaction, its state
// snapshot, the room's current state, head and forward extremities. It
// returns the event NID and its state_after snapshot. An event stored
// before without state (an outlier: known from a state or auth chain,
// or an out-of-band invite) keeps its NID and gains its place in the
// room; storing an event that already has its state is ErrNotFound.
func (db *DB) PersistEvent(ctx context.Context, ne NewEvent) (nid, stateAfter int64, err error) {
	var p Persisted
	err = db.tx(ctx, func(c conn) error {
		var err error
		p, err = persistEvent(ctx, c, ne)
		return err
	})
	return p.NID, p.StateAfter, err
}

// Persisted is what storing an event assigned: its NID and its
// state_after snapshot.
type Persisted struct {
	NID, StateAfter int64
}

// PersistEvents stores events, in order, in one transaction, as
// PersistEvent would one by one: a commit (the WAL write, or a round trip
// on PostgreSQL) is the dearest part of storing a message, and senders
// of any room can share it. Runs of plain events (see plain) are written
// with a few multi-row statements, whatever their number and rooms. Any
// failure fails them all.
func (db *DB) PersistEvents(ctx context.Context, nes []NewEvent) ([]Persisted, error) {
	out := make([]Persisted, len(nes))
	err := db.tx(ctx, func(c conn) error {
		for i := 0; i < len(nes); {
			j := i
			for j < len(nes) && plain(nes[j]) {
				j++
			}
			if j == i {
				var err error
				if out[i], err = persistEvent(ctx, c, nes[i]); err != nil {
					return err
				}
				j++
			} else if err := persistPlain(ctx, c, nes[i:j], out[i:j]); err != nil {
				return err
			}
			i = j
		}
		return nil
	})
	return out, err
}

// plain reports whether an event changes nothing but its own row and
// its room's head snapshot, depth and forward extremities: a message
// (or any event that is not accepted state), in an existing room.
func plain(ne NewEvent) bool {
	return ne.RoomVersion == "" && ne.Snapshot == nil && len(ne.CurrentState) == 0 && ne.HeadSnapshot != ThisEvent
}

// persistPlain stores a run of plain events: their rows, then for each
// room the head and forward extremities of its last event in the run,
// which is what applying them one by one would leave.
func persistPlain(ctx context.Context, c conn, nes []NewEvent, out []Persisted) error {
	nids, err := insertEventRows(ctx, c, nes)
	if err != nil {
		return err
	}
	rows := make([]EventRow, len(nes))
	for i, ne := range nes {
		rows[i] = ne.Row
	}
	if err := touchRoomList(ctx, c, rows); err != nil {
		return err
	}
	var heads, extremities []any
	var extremityRooms []any
	seenHead, seenExt := map[string]bool{}, map[string]bool{}
	for i := len(nes) - 1; i >= 0; i-- {
		ne := nes[i]
		out[i] = Persisted{NID: nids[ne.Row.EventID], StateAfter: ne.Row.StateAfter}
		room := ne.Row.RoomID
		if ne.HeadSnapshot != 0 && !seenHead[room] {
			seenHead[room] = true
			heads = append(heads, room, ne.HeadSnapshot, ne.Depth)
		}
		if ne.Extremities != nil && !seenExt[room] {
			seenExt[room] = true
			extremityRooms = append(extremityRooms, room)
			for _, id := range ne.Extremities {
				extremities = append(extremities, room, id)
			}
		}
	}
	if err := execRows(ctx, c, `INSERT INTO room_heads (room_id, snapshot, depth) VALUES `, 3,
		` ON CONFLICT (room_id) DO UPDATE SET snapshot = excluded.snapshot, depth = excluded.depth`, heads); err != nil {
		return err
	}
	for len(extremityRooms) > 0 {
		n := chunkSize(len(extremityRooms))
		if _, err := c.exec(ctx, `DELETE FROM forward_extremities WHERE room_id IN (`+placeholders(n, 1)+`)`, extremityRooms[:n]...); err != nil {
			return err
		}
		extremityRooms = extremityRooms[n:]
	}
	return execRows(ctx, c, `INSERT INTO forward_extremities (room_id, event_id) VALUES `, 2, ``, extremities)
}

// insertEventRows inserts event rows with multi-row INSERTs and returns
// their NIDs by event ID.
func insertEventRows(ctx context.Context, c conn, nes []NewEvent) (map[string]int64, error) {
	nids, want := make(map[string]int64, len(nes)), len(nes)
	scan := func(scan func(...any) error) (struct{}, error) {
		var id string
		var nid int64
		err := scan(&id, &nid)
		nids[id] = nid
		return struct{}{}, err
	}
	for len(nes) > 0 {
		n := chunkSize(len(nes))
		args := make([]any, 0, n*eventCols)
		for _, ne := range nes[:n] {
			args = append(args, eventValues(ne.Row)...)
		}
		if _, err := collect(ctx, c, scan, insertEvents+valueRows(n, eventCols)+upgradeOutlier+` RETURNING event_id, event_nid`, args...); err != nil {
			return nil, err
		}
		nes = nes[n:]
	}
	if len(nids) < want {
		return nil, ErrNotFound // one of them was stored with its state before
	}
	return nids, nil
}

// insertEvents is the INSERT of event rows up to VALUES; eventValues
// gives a row's eventCols values in its column order.
const insertEvents = `INSERT INTO events (event_id, room_id, type, state_key, sender, depth, origin_ts, stream_pos,
	state_before, state_after, status, membership, replaces_nid, relates_to, rel_type, contains_url,
	txn_localpart, txn_device, txn_id, txn_scope, json, on_behalf_of, withheld) VALUES `

const eventCols = 23

// upgradeOutlier follows the VALUES of insertEvents: an event stored
// before without state (an outlier: known from a state or auth chain, or
// an out-of-band invite) keeps its NID and gains its place in the room;
// an event stored with its state is left alone, and RETURNING skips it.
const upgradeOutlier = `
	ON CONFLICT (event_id) DO UPDATE SET stream_pos = excluded.stream_pos, state_before = excluded.state_before,
		state_after = excluded.state_after, status = excluded.status, replaces_nid = excluded.replaces_nid,
		relates_to = excluded.relates_to, rel_type = excluded.rel_type, contains_url = excluded.contains_url,
		on_behalf_of = excluded.on_behalf_of, withheld = excluded.withheld
	WHERE events.state_after = 0`

// insertEvent inserts or upgrades one event row and returns its NID.
var insertEvent = insertEvents + valueRows(1, eventCols) + upgradeOutlier + ` RETURNING event_nid`

func eventValues(r EventRow) []any {
	var stream any
	if r.StreamPos != 0 {
		stream = r.StreamPos
	}
	var onBehalfOf any
	if r.OnBehalfOf != "" {
		onBehalfOf = r.OnBehalfOf
	}
	return []any{r.EventID, r.RoomID, r.Type, r.StateKey, r.Sender, r.Depth, r.OriginTS, stream,
		r.StateBefore, r.StateAfter, int(r.Status), r.Membership, r.ReplacesNID, r.RelatesTo, r.RelType, r.ContainsURL,
		r.TxnLocalpart, r.TxnDevice, r.TxnID, r.TxnScope, r.JSON, onBehalfOf, r.Withheld}
}

// execRows runs prefix + "(...), (...)" + suffix for args holding rows
// of cols values each, in chunks.
func execRows(ctx context.Context, c conn, prefix string, cols int, suffix string, args []any) error {
	for len(args) > 0 {
		n := chunkSize(len(args) / cols)
		if _, err := c.exec(ctx, prefix+valueRows(n, cols)+suffix, args[:n*cols]...); err != nil {
			return err
		}
		args = args[n*cols:]
	}
	return nil
}

// chunkSize is how many of n rows the next multi-row statement takes:
// all of them up to exactChunks, above that a power of two up to 64, so
// that only a few statement texts exist to prepare (and PostgreSQL's
// 65,535 parameters are never reached).
func chunkSize(n int) int {
	if n <= exactChunks {
		return n
	}
	c := 64
	for c > n {
		c /= 2
	}
	return c
}

// exactChunks is the most rows chunkSize takes in one statement
// whatever their number. A group commit's batch is a few events to a
// few dozen, and in powers of two a batch of 7 took three statements
// per table (4 + 2 + 1), each with its own execution, bindings and
// statement journal: 16 more statement texts per table is cheap.
const exactChunks = 16

// renderedRows caches valueRows: chunkSize keeps the shapes few, and
// the busiest writers (notifications, events) render one per statement.
var renderedRows sync.Map // [2]int{rows, cols} -> string

// valueRows renders "($1, $2), ($3, $4)" for rows of cols values.
func valueRows(rows, cols int) string {
	if s, ok := renderedRows.Load([2]int{rows, cols}); ok {
		return s.(string)
	}
	s := renderValueRows(rows, cols)
	renderedRows.Store([2]int{rows, cols}, s)
	return s
}

func renderValueRows(rows, cols int) string {
	var b strings.Builder
	for r := 0; r < rows; r++ {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		b.WriteString(placeholders(cols, r*cols+1))
		b.WriteByte(')')
	}
	return b.String()
}

// persistEvent is PersistEvent inside a transaction.
func persistEvent(ctx context.Context, c conn, ne NewEvent) (Persisted, error) {
	r := ne.Row
	if ne.RoomVersion != "" {
		if _, err := c.exec(ctx, `INSERT INTO rooms (room_id, room_version, created_ts) VALUES ($1, $2, $3)`,
			r.RoomID, ne.RoomVersion, r.OriginTS); err != nil {
			return Persisted{}, err
		}
	}
	var nid int64
	if err := c.queryRow(ctx, insertEvent, eventValues(r), &nid); err != nil {
		return Persisted{}, err
	}
	if err := touchRoomList(ctx, c, []EventRow{r}); err != nil {
		return Persisted{}, err
	}
	stateAfter := r.StateAfter
	resolve := func(v int64) int64 {
		if v == ThisEvent {
			return nid
		}
		return v
	}
	if s := ne.Snapshot; s != nil {
		var err error
		if stateAfter, err = insertSnapshot(ctx, c, r.RoomID, *s, resolve); err != nil {
			return Persisted{}, err
		}
		if _, err := c.exec(ctx, `UPDATE events SET state_after = $2 WHERE event_nid = $1`, nid, stateAfter); err != nil {
			return Persisted{}, err
		}
	}
	return Persisted{NID: nid, StateAfter: stateAfter}, writeHead(ctx, c, r.RoomID, HeadUpdate{
		CurrentState: ne.CurrentState, Memberships: ne.Memberships, Snapshot: ne.HeadSnapshot,
		Depth: ne.Depth, Extremities: ne.Extremities,
	}, resolve, stateAfter)
}

// HeadUpdate moves a room's head: its current state (changes, with 0
// removing a key), head snapshot (0 keeps it) and depth, and its forward
// extremities (nil keeps them).
type HeadUpdate struct {
	CurrentState map[roommodel.StateKey]int64
	Memberships  map[string]string
	Snapshot     int64
	Depth        int64
	Extremities  []string
}

// UpdateRoomHead applies a HeadUpdate on its own, for heads computed
// after the event that caused them was stored (state resolution).
func (db *DB) UpdateRoomHead(ctx context.Context, roomID string, u HeadUpdate) error {
	return db.tx(ctx, func(c conn) error {
		return writeHead(ctx, c, roomID, u, func(v int64) int64 { return v }, 0)
	})
}

// writeHead applies u; nid resolves ThisEvent in current-state changes,
// and a Snapshot of ThisEvent means thisSnapshot.
func writeHead(ctx context.Context, c conn, roomID string, u HeadUpdate, nid func(int64) int64, thisSnapshot int64) error {
	var upserts [][]any
	for k, v := range u.CurrentState {
		if v == 0 {
			if _, err := c.exec(ctx, `DELETE FROM current_state WHERE room_id = $1 AND type = $2 AND state_key = $3`, roomID, k.Type, k.StateKey); err != nil {
				return err
			}
			continue
		}
		var membership *string
		if m, ok := u.Memberships[k.StateKey]; ok && k.Type == "m.room.member" {
			membership = &m
		}
		upserts = append(upserts, []any{roomID, k.Type, k.StateKey, nid(v), membership})
	}
	// Each key once (a map's), as an upsert of many rows requires.
	if err := insertMany(ctx, c, `INSERT INTO current_state (room_id, type, state_key, event_nid, membership)`,
		`ON CONFLICT (room_id, type, state_key) DO UPDATE SET event_nid = excluded.event_nid, membership = excluded.membership`,
		5, upserts); err != nil {
		return err
	}
	if u.Snapshot != 0 {
		head := u.Snapshot
		if head == ThisEvent {
			head = thisSnapshot
		}
		if _, err := c.exec(ctx, `INSERT INTO room_heads (room_id, snapshot, depth) VALUES ($1, $2, $3)
			ON CONFLICT (room_id) DO UPDATE SET snapshot = excluded.snapshot, depth = excluded.depth`, roomID, head, u.Depth); err != nil {
			return err
		}
	}
	if u.Extremities != nil {
		if _, err := c.exec(ctx, `DELETE FROM forward_extremities WHERE room_id = $1`, roomID); err != nil {
			return err
		}
		for _, id := range u.Extremities {
			if _, err := c.exec(ctx, `INSERT INTO forward_extremities (room_id, event_id) VALUES ($1, $2)`, roomID, id); err != nil {
				return err
			}
		}
	}
	return nil
}

// RoomHead is what the room engine loads to work on a room.
type RoomHead struct {
	RoomID      string
	Version     string
	Snapshot    int64
	ChainLen    int64
	Depth       int64
	Extremities []string
}

// LoadRoomHead loads a room's version, current snapshot, depth and
// forward extremities; ErrNotFound for rooms the server does not know.
func (db *DB) LoadRoomHead(ctx context.Context, roomID string) (RoomHead, error) {
	h := RoomHead{RoomID: roomID}
	if err := db.r().queryRow(ctx, `SELECT r.room_version, COALESCE(h.snapshot, 0), COALESCE(s.chain_len, 0), COALESCE(h.depth, 0)
		FROM rooms r LEFT JOIN room_heads h ON h.room_id = r.room_id LEFT JOIN state_snapshots s ON s.snapshot_id = h.snapshot
		WHERE r.room_id = $1`, []any{roomID},
		&h.Version, &h.Snapshot, &h.ChainLen, &h.Depth); err != nil {
		return h, err
	}
	var err error
	h.Extremities, err = db.r().strings(ctx, `SELECT event_id FROM forward_extremities WHERE room_id = $1 ORDER BY event_id`, roomID)
	return h, err
}

// RoomVersion returns a room's version; ErrNotFound if unknown.
func (db *DB) RoomVersion(ctx context.Context, roomID string) (string, error) {
	var v string
	err := db.r().queryRow(ctx, `SELECT room_version FROM rooms WHERE room_id = $1`, []any{roomID}, &v)
	return v, err
}

// Snapshot is one link of a snapshot chain.
type Snapshot struct {
	ID       int64
	Parent   int64
	ChainLen int64
	Entries  map[roommodel.StateKey]int64
}

// LoadSnapshot loads one snapshot's own delta (not its parents').
func (db *DB) LoadSnapshot(ctx context.Context, id int64) (Snapshot, error) {
	s := Snapshot{ID: id, Entries: map[roommodel.StateKey]int64{}}
	if err := db.r().queryRow(ctx, `SELECT parent_id, chain_len FROM state_snapshots WHERE snapshot_id = $1`, []any{id}, &s.Parent, &s.ChainLen); err != nil {
		return s, err
	}
	rows, err := db.r().query(ctx, `SELECT type, state_key, event_nid FROM state_snapshot_entries WHERE snapshot_id = $1`, id)
	if err != nil {
		return s, err
	}
	defer rows.Close()
	for rows.Next() {
		var k roommodel.StateKey
		var nid int64
		if err := rows.Scan(&k.Type, &k.StateKey, &nid); err != nil {
			return s, err
		}
		s.Entries[k] = nid
	}
	return s, rows.Err()
}

// SnapshotEntry loads one key of one snapshot's own delta (not its
// parents'): its parent, and the key's event NID (0 when the delta
// removes the key) if the delta holds the key at all. A room of 5,000
// members has a delta of 5,000 entries at the root of its chain, where
// the history visibility check wants two.
func (db *DB) SnapshotEntry(ctx context.Context, id int64, k roommodel.StateKey) (parent, nid int64, found bool, err error) {
	var n sql.NullInt64
	err = db.r().queryRow(ctx, `SELECT s.parent_id, e.event_nid FROM state_snapshots s
		LEFT JOIN state_snapshot_entries e ON e.snapshot_id = s.snapshot_id AND e.type = $2 AND e.state_key = $3
		WHERE s.snapshot_id = $1`, []any{id, k.Type, k.StateKey}, &parent, &n)
	return parent, n.Int64, n.Valid, err
}

// EventsByNID loads events by NID, in no particular order.
func (db *DB) EventsByNID(ctx context.Context, nids []int64) ([]EventRow, error) {
	return inChunks(nids, func(chunk []int64) ([]EventRow, error) {
		args := inArgs(chunk)
		return db.r().scanEvents(ctx, `SELECT `+eventColumns+` FROM events WHERE event_nid IN (`+placeholders(len(args), 1)+`)`, args...)
	})
}

// EventsByID loads events by event ID, in no particular order; unknown
// IDs are skipped.
func (db *DB) EventsByID(ctx context.Context, ids []string) ([]EventRow, error) {
	return inChunks(ids, func(chunk []string) ([]EventRow, error) {
		args := inArgs(chunk)
		return db.r().scanEvents(ctx, `SELECT `+eventColumns+` FROM events WHERE event_id IN (`+placeholders(len(args), 1)+`)`, args...)
	})
}

// maxInList is the most values one IN list carries; longer lists are
// queried in chunks (inChunks).
const maxInList = 500

// inChunks runs query on consecutive chunks of vals of at most maxInList
// values each, and returns what all of them found, in chunk order.
func inChunks[V, R any](vals []V, query func(chunk []V) ([]R, error)) ([]R, error) {
	var out []R
	for len(vals) > 0 {
		chunk := vals[:min(len(vals), maxInList)]
		vals = vals[len(chunk):]
		rows, err := query(chunk)
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
	}
	return out, nil
}

// inArgs turns the values of an IN list into arguments, padded to a
// power of two by repeating the last value (which IN ignores): lists of
// any length then share a few statement texts, where one text per length
// had grown the prepared-statement and rewrite caches without bound.
func inArgs[T any](vals []T) []any {
	if len(vals) == 0 {
		return nil
	}
	n := 1
	for n < len(vals) {
		n *= 2
	}
	args := make([]any, n)
	for i := range args {
		args[i] = vals[min(i, len(vals)-1)]
	}
	return args
}

// placeholders renders "$from, $from+1, ..." for n values.
func placeholders(n, from int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(from + i))
	}
	return b.String()
}

// MaxStreamPos is the highest event stream position stored. Account
// data, notification counts, device-list changes and presence take
// positions from the same stream, so a restart must resume after theirs
// too, or a reused position would hide a change from clients holding a
// later token.
func (db *DB) MaxStreamPos(ctx context.Context) (int64, error) {
	var n sql.NullInt64
	err := db.r().queryRow(ctx, `SELECT MAX(p) FROM (SELECT MAX(stream_pos) AS p FROM events
		UNION ALL SELECT MAX(stream_pos) FROM account_data
		UNION ALL SELECT MAX(counted_pos) FROM push_unread
		UNION ALL SELECT MAX(stream_pos) FROM device_list_changes
		UNION ALL SELECT MAX(stream_pos) FROM receipts
		UNION ALL SELECT MAX(stream_pos) FROM user_presence
		UNION ALL SELECT MAX(stream_pos) FROM partial_state_completed) AS positions`, nil, &n)
	return n.Int64, err
}

// EventByTxn finds the event a device already sent with a transaction ID
// on the same path (room and scope, see EventRow.TxnScope).
func (db *DB) EventByTxn(ctx context.Context, localpart, device, roomID, scope, txnID string) (string, error) {
	var id string
	err := db.r().queryRow(ctx, `SELECT event_id FROM events WHERE txn_localpart = $1 AND txn_device = $2 AND room_id = $3
		AND txn_scope = $4 AND txn_id = $5`, []any{localpart, device, roomID, scope, txnID}, &id)
	return id, err
}

// SentTxn is one transaction a device sent an event with: its room and
// scope (EventRow.TxnScope) and the client's transaction ID.
type SentTxn struct {
	RoomID, Scope, ID string
}

// TxnsOfDevice lists up to limit transactions a device sent events with,
// in no order.
func (db *DB) TxnsOfDevice(ctx context.Context, localpart, device string, limit int) ([]SentTxn, error) {
	// txn_id IS NOT NULL lets both databases use the partial index
	// events_txn, whose leading columns are the device's.
	rows, err := db.r().query(ctx, `SELECT room_id, txn_scope, txn_id FROM events
		WHERE txn_localpart = $1 AND txn_device = $2 AND txn_id IS NOT NULL AND txn_scope IS NOT NULL LIMIT $3`, localpart, device, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []SentTxn
	for rows.Next() {
		var t SentTxn
		if err := rows.Scan(&t.RoomID, &t.Scope, &t.ID); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// MarkRedacted records that a redaction applies to an event.
func (db *DB) MarkRedacted(ctx context.Context, eventID, redactedBy string, ts int64) error {
	_, err := db.w().exec(ctx, `UPDATE events SET redacted_by = $2, redacted_ts = $3 WHERE event_id = $1 AND redacted_by IS NULL`, eventID, redactedBy, ts)
	return err
}

// RedactedBefore lists events whose redaction is older than ts and whose
// original content is still stored.
func (db *DB) RedactedBefore(ctx context.Context, ts int64, limit int) ([]EventRow, error) {
	return db.r().scanEvents(ctx, `SELECT `+eventColumns+` FROM events WHERE redacted_ts > 0 AND redacted_ts < $1 AND pruned = FALSE
		ORDER BY redacted_ts LIMIT $2`, ts, limit)
}

// PruneEvent replaces an event's stored JSON by its redacted form.
func (db *DB) PruneEvent(ctx context.Context, nid int64, redactedJSON string) error {
	_, err := db.w().exec(ctx, `UPDATE events SET json = $2, pruned = TRUE WHERE event_nid = $1`, nid, redactedJSON)
	return err
}

// CreateSnapshot stores a state snapshot that no single event produced
// (the resolved state before an event with disagreeing prev_events, or a
// room's resolved current state) and returns its ID.
func (db *DB) CreateSnapshot(ctx context.Context, roomID string, d SnapshotDelta) (int64, error) {
	var id int64
	err := db.tx(ctx, func(c conn) error {
		var err error
		id, err = insertSnapshot(ctx, c, roomID, d, func(v int64) int64 { return v })
		return err
	})
	return id, err
}

func insertSnapshot(ctx context.Context, c conn, roomID string, d SnapshotDelta, nid func(int64) int64) (int64, error) {
	var id int64
	if err := c.queryRow(ctx, `INSERT INTO state_snapshots (room_id, parent_id, chain_len) VALUES ($1, $2, $3) RETURNING snapshot_id`,
		[]any{roomID, d.Parent, d.ChainLen}, &id); err != nil {
		return 0, err
	}
	vals := make([][]any, 0, len(d.Changes))
	for k, v := range d.Changes {
		vals = append(vals, []any{id, k.Type, k.StateKey, nid(v)})
	}
	return id, insertMany(ctx, c, `INSERT INTO state_snapshot_entries (snapshot_id, type, state_key, event_nid)`, "", 4, vals)
}
