package slidingsync

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/myelin-chat/myelin/internal/cache"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
	"github.com/myelin-chat/myelin/internal/store"
)

// Connections live in memory and are written behind to the database
// (see persist.go), so that a connection resumes after a restart: its
// pos is still known and nothing it was sent is sent again (issue 18).
// In memory a connection unused for connExpiry is forgotten, and at most
// maxConns are kept (the least recently used go first), so that memory
// stays bounded whatever clients do; a connection forgotten in memory is
// read back from the database, where it is kept storedConnExpiry after
// its last use (Synapse keeps them a week too).
const (
	connExpiry       = 30 * time.Minute
	storedConnExpiry = 7 * 24 * time.Hour
	maxConns         = 20000
)

type connKey struct{ user, device, id string }

// conn is one connection: the snapshot of what was sent as of its last
// two positions (the client may retry the previous one when an answer
// was lost, as Synapse allows).
type conn struct {
	mu       sync.Mutex
	lastUsed time.Time
	// token starts every pos of the connection: a connection started
	// over gets a new one, so that no pos of the old one is taken for
	// one of the new.
	token string
	seq   int64
	snaps [2]*snapshot // [0] newest
	// written is the snapshot last handed to the writer (nil: none, the
	// next write replaces whatever the database has for the key).
	written *snapshot
	// unstored: the connection outgrew what is persisted; it lives in
	// memory only until it starts over.
	unstored bool
	// gone: its device was deleted (forgetDevice); an answer still
	// being computed for it is not persisted.
	gone bool
}

// snapshot is what a connection had been sent as of one pos. It is
// never changed once stored: a new one is derived for the next answer,
// sharing the entries of rooms it did not touch.
type snapshot struct {
	pos  string
	seq  int64
	upto int64
	// counts are the lists' counts, so that a changed count alone makes
	// an answer worth sending.
	counts map[string]int
	rooms  map[string]*sentRoom
	// threadSubs is the thread subscriptions extension's position
	// (MSC4308): the last change sent.
	threadSubs int64
	// dataRooms are the rooms in the account_data extension's scope in
	// this answer: their room account data is the client's as of upto.
	// A room out of it hears of no change, so one that comes back gets
	// all of its account data again (Synapse tracks per room what it
	// sent). Not persisted: after a restart every room in scope gets
	// its account data once more, which the client overwrites in place.
	dataRooms map[string]bool
}

// sentRoom is what a connection has of one room.
type sentRoom struct {
	// membership is the user's membership when the room was last sent:
	// a room sent as an invite is sent again whole once joined.
	membership string
	// memberNID is the membership event then.
	memberNID int64
	// required is a hash of the required_state asked for then (see
	// requiredHash): asking for more sends the room again with what it
	// lacks.
	required uint64
	// upto is the stream position up to which its timeline was sent.
	upto int64
	// state is the state sent, by key (event NIDs).
	state map[roommodel.StateKey]int64
	// peek: the room was sent to a user not in it (a world-readable
	// room subscription).
	peek bool
	// timeline is the timeline_limit the room's timeline was last sent
	// with (as Synapse records it: raised when it grows, lowered only by
	// a limited timeline); a larger one later resends the recent
	// timeline with unstable_expanded_timeline. -1: unknown (stored
	// before it was recorded), never expanded.
	timeline int
}

func (r *sentRoom) clone() *sentRoom {
	c := *r
	c.state = maps.Clone(r.state)
	return &c
}

type connections struct {
	lru *cache.LRU[connKey, *conn]
	mu  sync.Mutex
	// st reads connections back (nil: memory only).
	st ConnStore
	w  *writer
}

func newConnections(st ConnStore) *connections {
	cs := &connections{lru: cache.NewLRU[connKey, *conn](maxConns), st: st}
	if st != nil {
		cs.w = newWriter(st)
	}
	return cs
}

func newToken() string {
	var b [9]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// parsePos splits a pos into its token and sequence number.
func parsePos(pos string) (string, int64, bool) {
	token, n, ok := strings.Cut(pos, "_")
	if !ok || token == "" {
		return "", 0, false
	}
	seq, err := strconv.ParseInt(n, 10, 64)
	return token, seq, err == nil && seq > 0
}

// lookup finds the snapshot for pos on a connection; pos "" starts the
// connection over. ok is false for an unknown pos.
func (cs *connections) lookup(ctx context.Context, k connKey, pos string, now time.Time) (*conn, *snapshot, bool, error) {
	cs.mu.Lock()
	c, found := cs.lru.Get(k)
	if found && now.Sub(c.lastUsed) > connExpiry {
		cs.lru.Remove(k)
		found = false
	}
	if !found && pos == "" {
		c = &conn{token: newToken()}
		cs.lru.Put(k, c)
		found = true
	}
	cs.mu.Unlock()
	if !found {
		loaded, err := cs.load(ctx, k, pos, now)
		if err != nil || loaded == nil {
			return nil, nil, false, err
		}
		cs.mu.Lock()
		if other, ok := cs.lru.Get(k); ok {
			c = other // loaded meanwhile by another request
		} else {
			c = loaded
			cs.lru.Put(k, c)
		}
		cs.mu.Unlock()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastUsed = now
	if pos == "" {
		if c.seq > 0 {
			// Started over: a new token, and the stored state is replaced
			// on the next write.
			c.token, c.seq, c.snaps, c.written, c.unstored = newToken(), 0, [2]*snapshot{}, nil, false
		}
		return c, nil, true, nil
	}
	for _, s := range c.snaps {
		if s != nil && s.pos == pos {
			return c, s, true, nil
		}
	}
	return nil, nil, false, nil
}

// load reads a connection back from the database when pos is the one
// stored for it (nil when not).
func (cs *connections) load(ctx context.Context, k connKey, pos string, now time.Time) (*conn, error) {
	token, seq, ok := parsePos(pos)
	if cs.st == nil || !ok {
		return nil, nil
	}
	sc, rooms, err := cs.st.SlidingConnection(ctx, k.user, k.device, k.id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if sc.Token != token || sc.Seq != seq || now.Sub(time.UnixMilli(sc.LastUsedTS)) > storedConnExpiry {
		return nil, nil
	}
	s, err := decodeSnapshot(sc, rooms)
	if err != nil {
		// Unreadable (written by another version): start over.
		return nil, nil
	}
	s.pos = pos
	return &conn{lastUsed: now, token: token, seq: seq, snaps: [2]*snapshot{s}, written: s}, nil
}

// forgetDevice drops the connections of a deleted device, so that a
// device later created with the same ID (a login naming it) cannot
// resume them: Synapse deletes a device's connections with the device.
// The database's rows go with the device's other data (the store's
// DeleteDeviceE2E); the drops queued here come after any write still
// queued for the connections, which would otherwise store them again.
func (cs *connections) forgetDevice(user, device string) {
	var gone []*conn
	var keys []connKey
	cs.mu.Lock()
	cs.lru.RemoveIf(func(k connKey, c *conn) bool {
		if k.user != user || k.device != device {
			return false
		}
		gone, keys = append(gone, c), append(keys, k)
		return true
	})
	cs.mu.Unlock()
	for i, c := range gone {
		c.mu.Lock()
		c.gone = true
		c.mu.Unlock()
		if cs.w != nil {
			// A full queue leaves the row to the expiry (7 days); its pos
			// resumes nothing meanwhile unless a write queued before the
			// deletion lands after it.
			cs.w.enqueue(writeJob{key: keys[i], drop: true})
		}
	}
}

// store records the snapshot of an answer, gives it its pos and hands
// what changed since the last write to the writer. The answer to an
// older pos than the newest drops the newest, which the client never
// received.
func (cs *connections) store(k connKey, c *conn, from, s *snapshot, now time.Time) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	s.seq = c.seq
	s.pos = c.token + "_" + strconv.FormatInt(c.seq, 10)
	if from == nil || c.snaps[0] != from {
		c.snaps = [2]*snapshot{s, from}
	} else {
		c.snaps = [2]*snapshot{s, c.snaps[0]}
	}
	if cs.w != nil && !c.unstored && !c.gone {
		job := writeJob{key: k, token: c.token, prev: c.written, next: s, now: now}
		if tooBig(s) {
			job.drop, c.unstored = true, true
		}
		if cs.w.enqueue(job) {
			c.written = s
		} else {
			// The queue is full: the next write replaces the stored
			// connection whole. Until then the stored pos is older than
			// the client's, which after a restart is unknown: safe.
			c.written = nil
		}
	}
	return s.pos
}
