package slidingsync

import (
	"maps"
	"strconv"
	"sync"
	"time"

	"github.com/myelin-chat/myelin/internal/cache"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
)

// Connections are kept in memory: after a restart every pos is unknown,
// the client gets M_UNKNOWN_POS and starts its connection over, which
// matrix-rust-sdk does without the user noticing (it keeps its own
// cache of rooms). A connection unused for connExpiry is forgotten, and
// at most maxConns are kept (the least recently used go first), so that
// memory stays bounded whatever clients do.
const (
	connExpiry = 30 * time.Minute
	maxConns   = 20000
)

type connKey struct{ user, device, id string }

// conn is one connection: the snapshot of what was sent as of its last
// two positions (the client may retry the previous one when an answer
// was lost, as Synapse allows).
type conn struct {
	mu       sync.Mutex
	lastUsed time.Time
	seq      int64
	snaps    [2]*snapshot // [0] newest
}

// snapshot is what a connection had been sent as of one pos. It is
// never changed once stored: a new one is derived for the next answer,
// sharing the entries of rooms it did not touch.
type snapshot struct {
	pos  string
	upto int64
	// counts are the lists' counts, so that a changed count alone makes
	// an answer worth sending.
	counts map[string]int
	rooms  map[string]*sentRoom
}

// sentRoom is what a connection has of one room.
type sentRoom struct {
	// membership is the user's membership when the room was last sent:
	// a room sent as an invite is sent again whole once joined.
	membership string
	// memberNID is the membership event then.
	memberNID int64
	// required is the required_state asked for then (JSON): asking for
	// more sends the room again with what it lacks.
	required string
	// upto is the stream position up to which its timeline was sent.
	upto int64
	// state is the state sent, by key (event NIDs).
	state map[roommodel.StateKey]int64
}

func (r *sentRoom) clone() *sentRoom {
	c := *r
	c.state = maps.Clone(r.state)
	return &c
}

type connections struct {
	lru *cache.LRU[connKey, *conn]
	mu  sync.Mutex
	// epoch starts every pos, so that no pos from before a restart is
	// taken for one of the same connection after it.
	epoch string
}

func newConnections() *connections {
	return &connections{lru: cache.NewLRU[connKey, *conn](maxConns), epoch: strconv.FormatInt(time.Now().UnixNano(), 36)}
}

// lookup finds the snapshot for pos on a connection; pos "" starts the
// connection over. ok is false for an unknown pos.
func (cs *connections) lookup(k connKey, pos string, now time.Time) (*conn, *snapshot, bool) {
	cs.mu.Lock()
	c, found := cs.lru.Get(k)
	if found && now.Sub(c.lastUsed) > connExpiry {
		cs.lru.Remove(k)
		found = false
	}
	if !found {
		if pos != "" {
			cs.mu.Unlock()
			return nil, nil, false
		}
		c = &conn{}
		cs.lru.Put(k, c)
	}
	cs.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastUsed = now
	if pos == "" {
		return c, nil, true
	}
	for _, s := range c.snaps {
		if s != nil && s.pos == pos {
			return c, s, true
		}
	}
	return nil, nil, false
}

// store records the snapshot of an answer and gives it its pos. The
// answer to an older pos than the newest drops the newest, which the
// client never received.
func (c *conn) store(epoch string, from, s *snapshot) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	s.pos = epoch + "_" + strconv.FormatInt(c.seq, 10)
	if from == nil || c.snaps[0] != from {
		c.snaps = [2]*snapshot{s, from}
	} else {
		c.snaps = [2]*snapshot{s, c.snaps[0]}
	}
	return s.pos
}
