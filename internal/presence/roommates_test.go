package presence

import (
	"context"
	"testing"

	"github.com/myelin-chat/myelin/internal/cache"
	"github.com/myelin-chat/myelin/internal/store"
)

// membershipsStore answers MembershipsOf and counts the questions.
type membershipsStore struct {
	Store
	asked int
}

func (s *membershipsStore) MembershipsOf(_ context.Context, userID string, _ ...string) ([]store.RoomMembership, error) {
	s.asked++
	return []store.RoomMembership{{RoomID: "!r:" + userID}}, nil
}

// TestRoommatesExpireWhenIdle: a user's rooms, loaded while busy, are
// kept while they are asked for and dropped by the quiet checks once
// they are not, then loaded again.
func TestRoommatesExpireWhenIdle(t *testing.T) {
	st := &membershipsStore{}
	m := newRoommates(st)
	ctx := context.Background()
	for range 2 {
		if _, err := m.joinedRooms(ctx, "@a:x"); err != nil {
			t.Fatal(err)
		}
	}
	if st.asked != 1 {
		t.Fatalf("asked the store %d times for one user, want 1", st.asked)
	}
	cache.TrimIdleCaches() // used since the last check: kept
	if _, ok := m.cachedRooms("@a:x"); !ok {
		t.Fatal("a user's rooms in use were dropped by one quiet check")
	}
	cache.TrimIdleCaches()
	cache.TrimIdleCaches()
	if _, ok := m.cachedRooms("@a:x"); ok {
		t.Fatal("a user's rooms unused through quiet checks were kept")
	}
	if ids, err := m.joinedRooms(ctx, "@a:x"); err != nil || len(ids) != 1 || st.asked != 2 {
		t.Fatalf("after the trim: %v, %v, %d questions; want the room again from a second question", ids, err, st.asked)
	}
}
