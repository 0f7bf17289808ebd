package cache

import "sync"

// Marks records, per key, the stream position of the latest change
// since start-up, so that a reader can tell without a query that nothing
// changed after a position. Before start-up it cannot tell: positions
// below the start always need the query.
type Marks struct {
	mu    sync.Mutex
	start int64
	pos   map[string]int64
}

// NewMarks makes marks for changes after position start.
func NewMarks(start int64) *Marks { return &Marks{start: start, pos: map[string]int64{}} }

// Note records a change of key at pos (record it before pos becomes
// readable, so that a reader who sees pos also sees the mark).
func (m *Marks) Note(key string, pos int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if pos > m.pos[key] {
		m.pos[key] = pos
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
	return after >= m.start && m.pos[key] <= after
}
