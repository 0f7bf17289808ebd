package cache

import (
	"slices"
	"sync"
)

// DefaultMarksLimit is how many keys a Marks made by NewMarks remembers.
const DefaultMarksLimit = 100_000

// Marks records, per key, the stream position of the latest change
// since start-up, so that a reader can tell without a query that nothing
// changed after a position. Before start-up it cannot tell: positions
// below the start always need the query.
//
// It remembers at most limit keys: past that it forgets the older half
// and raises floor to the newest position forgotten, so that a key it
// does not remember counts as changed at floor. That only ever sends a
// reader to the query; a key per user, room or server would otherwise
// grow the map for the life of the process.
type Marks struct {
	mu    sync.Mutex
	start int64
	floor int64
	limit int
	pos   map[string]int64
}

// NewMarks makes marks for changes after position start.
func NewMarks(start int64) *Marks { return NewMarksLimit(start, DefaultMarksLimit) }

// NewMarksLimit makes marks for changes after position start that
// remember at most limit keys.
func NewMarksLimit(start int64, limit int) *Marks {
	return &Marks{start: start, floor: start, limit: max(limit, 2), pos: map[string]int64{}}
}

// Note records a change of key at pos (record it before pos becomes
// readable, so that a reader who sees pos also sees the mark).
func (m *Marks) Note(key string, pos int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if pos <= m.floor || pos <= m.pos[key] {
		return
	}
	m.pos[key] = pos
	if len(m.pos) > m.limit {
		m.forgetLocked()
	}
}

// forgetLocked drops the older half of the marks.
func (m *Marks) forgetLocked() {
	all := make([]int64, 0, len(m.pos))
	for _, p := range m.pos {
		all = append(all, p)
	}
	slices.Sort(all)
	m.floor = max(m.floor, all[len(all)/2])
	for k, p := range m.pos {
		if p <= m.floor {
			delete(m.pos, k)
		}
	}
}

// Unchanged reports whether key surely had no change after position
// after.
func (m *Marks) Unchanged(key string, after int64) bool {
	if m == nil {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return after >= m.start && m.floor <= after && m.pos[key] <= after
}

// Len is the number of keys remembered.
func (m *Marks) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.pos)
}
