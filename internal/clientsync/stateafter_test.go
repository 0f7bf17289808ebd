package clientsync

import (
	"context"
	"testing"

	"github.com/myelin-chat/myelin/internal/clientevent"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// statesAt answers StateAfterAtOrBefore from a map and counts the
// queries.
type statesAt struct {
	Store   // the rest is unused
	state   map[string]int64
	queries int
}

func (s *statesAt) StateAfterAtOrBefore(_ context.Context, roomID string, _ int64) (int64, error) {
	s.queries++
	if st, ok := s.state[roomID]; ok {
		return st, nil
	}
	return 0, store.ErrNotFound
}

// The requests one event wakes share the state at the end of their
// timelines; what is not yet readable, a room with no events yet and
// a room whose partial state was completed are asked again.
func TestStateAfterAtShared(t *testing.T) {
	ctx := context.Background()
	st := &statesAt{state: map[string]int64{"!a:hs1.test": 7}}
	engine := rooms.New(nil, rooms.NewStreamGen(10, nil), nil, rooms.Options{})
	s := New(st, engine, nil, clientevent.Renderer{}, Sources{})
	ask := func(roomID string, pos int64, want int64, wantQueries int) {
		t.Helper()
		got, err := s.stateAfterAt(ctx, roomID, pos)
		if want == 0 && err != store.ErrNotFound || want != 0 && (err != nil || got != want) {
			t.Fatalf("stateAfterAt(%s, %d) = %d, %v; want %d", roomID, pos, got, err, want)
		}
		if st.queries != wantQueries {
			t.Fatalf("after stateAfterAt(%s, %d): %d queries, want %d", roomID, pos, st.queries, wantQueries)
		}
	}
	ask("!a:hs1.test", 10, 7, 1)
	ask("!a:hs1.test", 10, 7, 1) // shared
	ask("!a:hs1.test", 9, 7, 2)  // another position
	ask("!a:hs1.test", 11, 7, 3) // beyond the readable position
	ask("!a:hs1.test", 11, 7, 4)
	ask("!b:hs1.test", 10, 0, 5) // no events yet
	ask("!b:hs1.test", 10, 0, 6)

	st.state["!a:hs1.test"] = 5 // an event rejected by the full state
	s.forgetStates(map[string]bool{"!c:hs1.test": true})
	ask("!a:hs1.test", 10, 7, 6)
	s.forgetStates(map[string]bool{"!a:hs1.test": true})
	ask("!a:hs1.test", 10, 5, 7)
}

// completingStates is statesAt whose query returns the answer read
// before a partial-state completion, which forgets the room's states
// while the query is under way.
type completingStates struct {
	statesAt
	during func()
}

func (s *completingStates) StateAfterAtOrBefore(ctx context.Context, roomID string, pos int64) (int64, error) {
	st, err := s.statesAt.StateAfterAtOrBefore(ctx, roomID, pos)
	if s.during != nil {
		s.during()
		s.during = nil
	}
	return st, err
}

// An answer read before a completion that another request saw while
// the query ran is stale: it is returned to its request but not cached.
func TestStateAfterAtNotCachedAcrossCompletion(t *testing.T) {
	ctx := context.Background()
	st := &completingStates{statesAt: statesAt{state: map[string]int64{"!a:hs1.test": 7}}}
	engine := rooms.New(nil, rooms.NewStreamGen(10, nil), nil, rooms.Options{})
	s := New(st, engine, nil, clientevent.Renderer{}, Sources{})
	st.during = func() {
		st.state["!a:hs1.test"] = 5
		s.forgetStates(map[string]bool{"!a:hs1.test": true})
	}
	if got, err := s.stateAfterAt(ctx, "!a:hs1.test", 10); err != nil || got != 7 {
		t.Fatalf("stateAfterAt = %d, %v; want the answer read, 7", got, err)
	}
	if got, err := s.stateAfterAt(ctx, "!a:hs1.test", 10); err != nil || got != 5 {
		t.Fatalf("stateAfterAt after the completion = %d, %v; want 5 (the stale answer was cached)", got, err)
	}
}
