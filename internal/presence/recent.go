package presence

import (
	"sort"

	"github.com/myelin-chat/myelin/internal/store"
)

// recentCap bounds the changes kept in memory. A long-poll's window
// spans the changes of a few seconds to a minute; a client away longer
// than the ring covers is answered from the store, as before.
const recentCap = 8192

// recent keeps the latest presence changes by stream position, the
// latest one per user, so that a woken /sync finds the changes of its
// window without asking the database for every change on the server
// since its token: at 10,000 users that query, run on every wake-up of
// every long-poll, was 69 % of the server's CPU (docs/benchmarks.md,
// "Scale curve"). It answers what store.PresenceChanges answers, whose
// table likewise holds one row per user at its latest position: a user
// who changed again after the window is in neither.
type recent struct {
	// floor: changes at positions up to it may be missing (dropped, or
	// made before the service started); a window starting below it is
	// the store's to answer.
	floor int64
	// entries are ordered by position; one is live while latest holds
	// its position for its user, stale once the user changed again.
	entries []store.Presence
	latest  map[string]int64
	max     int
}

func newRecent(floor int64, max int) *recent {
	return &recent{floor: floor, latest: map[string]int64{}, max: max}
}

// add records a stored change. Changes are stored out of position order
// when several run at once, and a user's older one may land last (the
// store then keeps the newer row, and so does this).
func (r *recent) add(p store.Presence) {
	if p.StreamPos <= r.floor {
		return
	}
	if cur, ok := r.latest[p.UserID]; ok && cur >= p.StreamPos {
		return
	}
	r.latest[p.UserID] = p.StreamPos
	i := len(r.entries)
	for i > 0 && r.entries[i-1].StreamPos > p.StreamPos {
		i--
	}
	r.entries = append(r.entries, store.Presence{})
	copy(r.entries[i+1:], r.entries[i:])
	r.entries[i] = p
	if len(r.entries) > r.max {
		r.compact()
	}
}

// compact drops stale entries and then the oldest live ones down to half
// the bound, raising the floor past them.
func (r *recent) compact() {
	live := r.entries[:0]
	for _, e := range r.entries {
		if r.latest[e.UserID] == e.StreamPos {
			live = append(live, e)
		}
	}
	if drop := len(live) - r.max/2; drop > 0 {
		for _, e := range live[:drop] {
			delete(r.latest, e.UserID)
		}
		r.floor = live[drop-1].StreamPos
		live = append(live[:0], live[drop:]...)
	}
	clear(r.entries[len(live):])
	r.entries = live
}

// window lists the live changes at positions in (after, upto], in
// position order; false when the ring does not cover after.
func (r *recent) window(after, upto int64) ([]store.Presence, bool) {
	if after < r.floor {
		return nil, false
	}
	i := sort.Search(len(r.entries), func(i int) bool { return r.entries[i].StreamPos > after })
	var out []store.Presence
	for ; i < len(r.entries) && r.entries[i].StreamPos <= upto; i++ {
		if e := r.entries[i]; r.latest[e.UserID] == e.StreamPos {
			out = append(out, e)
		}
	}
	return out, true
}

// refresh replaces a live entry with the same change's state as saved
// later (timestamps that moved without a new position).
func (r *recent) refresh(p store.Presence) {
	if r.latest[p.UserID] != p.StreamPos {
		return
	}
	i := sort.Search(len(r.entries), func(i int) bool { return r.entries[i].StreamPos >= p.StreamPos })
	if i < len(r.entries) && r.entries[i].UserID == p.UserID {
		r.entries[i] = p
	}
}
