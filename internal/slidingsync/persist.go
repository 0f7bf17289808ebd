package slidingsync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/myelin-chat/myelin/internal/queue"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
	"github.com/myelin-chat/myelin/internal/store"
)

// Bounds on what is persisted of one connection: past them the
// connection lives in memory only (and after a restart starts over),
// so that a client cannot make the database hold unbounded state.
const (
	maxStoredRooms     = 5000
	maxStoredStateKeys = 2000 // per room
	// writeQueue is how many answers may wait for the writer; past it a
	// connection's next write replaces it whole (see connections.store).
	writeQueue = 4096
	// writeBatch is how many answers one transaction writes at most.
	writeBatch = 256
	// writeDelay lets answers gather into one transaction: a commit is
	// the dearest part of a write.
	writeDelay  = 50 * time.Millisecond
	expiryEvery = time.Hour
)

// ConnStore is where connections are persisted.
type ConnStore interface {
	SlidingConnection(ctx context.Context, userID, deviceID, connID string) (store.SlidingConn, map[string]string, error)
	WriteSlidingConnections(ctx context.Context, ws []store.SlidingConnWrite) error
	ExpireSlidingConnections(ctx context.Context, beforeTS int64) error
}

// writeJob is one answer to persist: the snapshot it leaves and the one
// last written for the connection (nil: none, write it whole).
type writeJob struct {
	key   connKey
	token string
	prev  *snapshot
	next  *snapshot
	now   time.Time
	drop  bool
}

// writer persists connections behind the requests: an answer only
// queues its snapshot; the writer works out what changed since the
// connection's last write (rooms whose entry is another pointer, the
// snapshots sharing the entries of untouched rooms) and writes the
// answers of many connections in one transaction.
type writer struct {
	st  ConnStore
	q   *queue.Queue[writeJob]
	log *slog.Logger
}

func newWriter(st ConnStore) *writer {
	return &writer{st: st, q: queue.New[writeJob](writeQueue), log: slog.Default()}
}

func (w *writer) enqueue(j writeJob) bool {
	return w.q.TryPush(j)
}

// Run writes queued answers until ctx ends, then what is still queued
// (the answers of the last requests before a shutdown), and expires
// connections unused for storedConnExpiry.
func (w *writer) Run(ctx context.Context) error {
	expire := time.NewTicker(expiryEvery)
	defer expire.Stop()
	w.expire(ctx)
	for {
		select {
		case <-w.q.Ready():
			if w.q.Len() == 0 {
				continue
			}
			timer := time.NewTimer(writeDelay)
		gather:
			for w.q.Len() < writeBatch {
				select {
				case <-w.q.Ready():
				case <-timer.C:
					break gather
				case <-ctx.Done():
					break gather
				}
			}
			timer.Stop()
			w.write(context.WithoutCancel(ctx), w.q.Take(writeBatch))
		case <-expire.C:
			w.expire(ctx)
		case <-ctx.Done():
			w.Flush(context.WithoutCancel(ctx))
			return nil
		}
	}
}

// Flush writes whatever is queued.
func (w *writer) Flush(ctx context.Context) {
	for {
		batch := w.q.Take(writeBatch)
		if len(batch) == 0 {
			return
		}
		w.write(ctx, batch)
	}
}

func (w *writer) expire(ctx context.Context) {
	if err := w.st.ExpireSlidingConnections(ctx, time.Now().Add(-storedConnExpiry).UnixMilli()); err != nil && ctx.Err() == nil {
		w.log.Warn("sliding sync: expiring connections", "err", err)
	}
}

func (w *writer) write(ctx context.Context, batch []writeJob) {
	ws := make([]store.SlidingConnWrite, 0, len(batch))
	for _, j := range batch {
		ws = append(ws, j.diff())
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := w.st.WriteSlidingConnections(ctx, ws); err != nil {
		// The connections keep working from memory; after a restart their
		// pos is unknown or older, and the clients start over.
		w.log.Warn("sliding sync: persisting connections", "err", err, "connections", len(ws))
	}
}

// diff is the write that brings the stored connection from prev to next.
func (j writeJob) diff() store.SlidingConnWrite {
	w := store.SlidingConnWrite{UserID: j.key.user, DeviceID: j.key.device, ConnID: j.key.id, Drop: j.drop}
	if j.drop {
		return w
	}
	w.SlidingConn = store.SlidingConn{Token: j.token, Seq: j.next.seq, Upto: j.next.upto, Extra: encodeExtra(j.next),
		LastUsedTS: j.now.UnixMilli()}
	w.Rooms = map[string]string{}
	if j.prev == nil {
		w.Fresh = true
		for id, r := range j.next.rooms {
			w.Rooms[id] = encodeRoom(r)
		}
		return w
	}
	for id, r := range j.next.rooms {
		if j.prev.rooms[id] != r {
			w.Rooms[id] = encodeRoom(r)
		}
	}
	for id := range j.prev.rooms {
		if _, ok := j.next.rooms[id]; !ok {
			w.Gone = append(w.Gone, id)
		}
	}
	return w
}

// tooBig reports whether a snapshot is past what is persisted.
func tooBig(s *snapshot) bool {
	if len(s.rooms) > maxStoredRooms {
		return true
	}
	for _, r := range s.rooms {
		if len(r.state) > maxStoredStateKeys {
			return true
		}
	}
	return false
}

// storedExtra is a connection's small values.
type storedExtra struct {
	Counts     map[string]int `json:"c,omitempty"`
	ThreadSubs int64          `json:"t,omitempty"`
}

func encodeExtra(s *snapshot) string {
	b, _ := json.Marshal(storedExtra{Counts: s.counts, ThreadSubs: s.threadSubs})
	return string(b)
}

// storedRoom is a sentRoom as stored: short keys, the state as
// [type, state_key, nid] triples.
type storedRoom struct {
	Membership string  `json:"m"`
	MemberNID  int64   `json:"n,omitempty"`
	Required   uint64  `json:"r,omitempty"`
	Upto       int64   `json:"u,omitempty"`
	Peek       bool    `json:"p,omitempty"`
	Timeline   *int    `json:"l,omitempty"`
	State      [][]any `json:"s,omitempty"`
}

func encodeRoom(r *sentRoom) string {
	sr := storedRoom{Membership: r.membership, MemberNID: r.memberNID, Required: r.required, Upto: r.upto, Peek: r.peek}
	if r.timeline >= 0 {
		sr.Timeline = &r.timeline
	}
	for k, nid := range r.state {
		sr.State = append(sr.State, []any{k.Type, k.StateKey, nid})
	}
	b, _ := json.Marshal(sr)
	return string(b)
}

func decodeRoom(data string) (*sentRoom, error) {
	var sr struct {
		Membership string               `json:"m"`
		MemberNID  int64                `json:"n"`
		Required   uint64               `json:"r"`
		Upto       int64                `json:"u"`
		Peek       bool                 `json:"p"`
		Timeline   *int                 `json:"l"`
		Raw        [][3]json.RawMessage `json:"s"`
	}
	if err := json.Unmarshal([]byte(data), &sr); err != nil {
		return nil, err
	}
	r := &sentRoom{membership: sr.Membership, memberNID: sr.MemberNID, required: sr.Required, upto: sr.Upto, peek: sr.Peek,
		timeline: -1, state: make(map[roommodel.StateKey]int64, len(sr.Raw))}
	if sr.Timeline != nil {
		r.timeline = *sr.Timeline
	}
	for _, t := range sr.Raw {
		var k roommodel.StateKey
		var nid int64
		if json.Unmarshal(t[0], &k.Type) != nil || json.Unmarshal(t[1], &k.StateKey) != nil || json.Unmarshal(t[2], &nid) != nil {
			return nil, errors.New("slidingsync: bad stored state entry")
		}
		r.state[k] = nid
	}
	return r, nil
}

func decodeSnapshot(sc store.SlidingConn, rooms map[string]string) (*snapshot, error) {
	var ex storedExtra
	if err := json.Unmarshal([]byte(sc.Extra), &ex); err != nil {
		return nil, fmt.Errorf("slidingsync: stored connection: %w", err)
	}
	s := &snapshot{seq: sc.Seq, upto: sc.Upto, counts: ex.Counts, threadSubs: ex.ThreadSubs, rooms: make(map[string]*sentRoom, len(rooms))}
	if s.counts == nil {
		s.counts = map[string]int{}
	}
	for id, data := range rooms {
		r, err := decodeRoom(data)
		if err != nil {
			return nil, fmt.Errorf("slidingsync: stored room %s: %w", id, err)
		}
		s.rooms[id] = r
	}
	return s, nil
}

// requiredHash is a hash of a required_state in its canonical form
// (requiredKey): what a connection remembers, and stores, of what it
// asked for.
func requiredHash(required [][]string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(requiredKey(required)))
	return h.Sum64()
}
