package rooms

import "github.com/myelin-chat/myelin/internal/cache"

// headIdleTrims quiet checks (10 s each) without a use drop a room's
// head: loading it again reads the room's state, which a room pausing
// between messages should not pay every time.
const headIdleTrims = 3

// idleHeads drops, while the server is quiet (cache.TrimWhenIdle), the
// heads of rooms unused for headIdleTrims checks, as RunEviction does
// after ten minutes. A head is the room's current state map, its
// extremities, its last write and the auth keys of its messages: some
// thirty small objects for a small room, with keys whose strings are
// those of the events that set them. After issue 20's load run the
// heads of its 101 rooms were the largest group of objects alive a
// minute after the load (heap profile, 8 KiB sampling), made during
// the setup and the burst and scattered over the spans they filled.
type idleHeads struct{ e *Engine }

func (t *idleHeads) TrimIdle() int {
	e := t.e
	e.headsMu.Lock()
	defer e.headsMu.Unlock()
	n := 0
	for id, h := range e.heads {
		if h.refs != 0 {
			continue
		}
		if h.idleTrims++; h.idleTrims >= headIdleTrims {
			delete(e.heads, id)
			n++
		}
	}
	if n > 0 {
		e.heads = cache.Resized(e.heads)
	}
	return n
}
