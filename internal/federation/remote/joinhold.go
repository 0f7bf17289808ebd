package remote

import (
	"context"
	"sync"
)

// maxHeldPerRoom and maxHeldBytesPerRoom bound the events held for one
// room while it is being joined (any server may send them). Past either
// the oldest are dropped: the newest events name the older ones as
// prev_events, so once the join is stored receiving them fetches what
// was dropped (get_missing_events), whereas a dropped newest event is
// named by nothing and would stay lost until the next event.
const (
	maxHeldPerRoom      = 500
	maxHeldBytesPerRoom = 4 << 20
)

// joinHolds are the rooms this server is joining through another server
// and the events other servers sent for them meanwhile.
//
// The resident server sends a room's new events to the joining server as
// soon as it has accepted its send_join, while the joining server is
// still checking and storing the answer (signatures, auth chain, state:
// seconds for a big room); until the join is stored the room is unknown
// here and its events would be refused and lost for good when nothing
// follows them. Synapse queues them (FederationHandler.room_queues) and
// processes them once the join is stored; so does this server.
type joinHolds struct {
	mu    sync.Mutex
	rooms map[string]*heldRoom
}

type heldRoom struct {
	joins int // joins of the room in flight
	held  []heldEvent
	bytes int // of held
}

type heldEvent struct {
	size    int
	receive func(context.Context)
}

// begin notes a join of roomID in flight; end, called once it stored
// the join or failed, returns the held events' receivers, in arrival
// order, for the caller to run. The last join to end (or the first to
// succeed) takes them.
func (j *joinHolds) begin(roomID string) (end func(joined bool) []func(context.Context)) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.rooms == nil {
		j.rooms = map[string]*heldRoom{}
	}
	r := j.rooms[roomID]
	if r == nil {
		r = &heldRoom{}
		j.rooms[roomID] = r
	}
	r.joins++
	var once sync.Once
	return func(joined bool) (out []func(context.Context)) {
		once.Do(func() {
			j.mu.Lock()
			defer j.mu.Unlock()
			r.joins--
			if j.rooms[roomID] != r || (!joined && r.joins > 0) {
				return
			}
			// The room is known from here on (or no join is left to
			// make it so): later events take the ordinary path.
			delete(j.rooms, roomID)
			for _, h := range r.held {
				out = append(out, h.receive)
			}
		})
		return out
	}
}

// hold keeps receive, the receiving of an event of roomID of size bytes,
// to run once a join of the room in flight ends; false when no join is.
func (j *joinHolds) hold(roomID string, size int, receive func(context.Context)) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	r := j.rooms[roomID]
	if r == nil {
		return false
	}
	r.held = append(r.held, heldEvent{size: size, receive: receive})
	r.bytes += size
	drop := 0
	for len(r.held)-drop > maxHeldPerRoom || (r.bytes > maxHeldBytesPerRoom && len(r.held)-drop > 1) {
		r.bytes -= r.held[drop].size
		drop++
	}
	r.held = append(r.held[:0], r.held[drop:]...)
	return true
}

// HoldForJoin keeps receive, which receives an event (of size bytes)
// another server sent for a room this server does not know, until a
// join of that room in flight is stored (or fails): it reports false,
// and keeps nothing, when no such join is in flight. Join runs what it
// held before it returns, so that the joining user's first look at the
// room finds the events sent while it joined.
func (f *Service) HoldForJoin(roomID string, size int, receive func(context.Context)) bool {
	return f.holds.hold(roomID, size, receive)
}
