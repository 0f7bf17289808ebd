package reputation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/store"
)

// extentStore is an ExtentStore in memory that counts its writes.
type extentStore struct {
	writes int
	rows   []store.UserExtent
	fail   bool
}

func (s *extentStore) AddUserExtent(_ context.Context, xs []store.UserExtent) error {
	if s.fail {
		return errors.New("down")
	}
	s.writes++
	s.rows = append(s.rows, xs...)
	return nil
}

func (s *extentStore) UserExtentSince(context.Context, string) ([]store.UserExtent, error) {
	return s.rows, nil
}

func (s *extentStore) PruneUserExtent(context.Context, string) error { return nil }

// TestUserExtentBatched: a thousand hidden events make one write of one
// row per user, day and feed, with each entity once; a failed write
// keeps the counts for the next; a new UserFilters over the store
// reports what the first counted.
func TestUserExtentBatched(t *testing.T) {
	ctx := context.Background()
	st := &extentStore{}
	u := NewUserFilters(WithExtentStore(st, slog.New(slog.DiscardHandler)))
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	u.now = func() time.Time { return now }
	for i := range 1000 {
		u.Hid("@alice:here.test", []string{"!feed:x.test"}, false, fmt.Sprintf("@spam%d:evil.test", i%10), "!room:x.test")
	}
	u.Hid("@alice:here.test", []string{"!feed:x.test"}, true, "@spam0:evil.test", "!other:x.test")
	st.fail = true
	u.writeExtent(ctx)
	st.fail = false
	u.writeExtent(ctx)
	u.writeExtent(ctx) // nothing pending: no write
	if st.writes != 1 || len(st.rows) != 1 {
		t.Fatalf("%d writes of %d rows, want 1 of 1", st.writes, len(st.rows))
	}
	r := st.rows[0]
	if r.Events != 1000 || r.Invites != 1 || len(r.Entities) != 10+2+1 {
		t.Errorf("row: %d events, %d invites, %d entities; want 1000, 1, 13", r.Events, r.Invites, len(r.Entities))
	}

	again := NewUserFilters(WithExtentStore(st, slog.New(slog.DiscardHandler)))
	again.now = u.now
	if err := again.loadExtent(ctx); err != nil {
		t.Fatal(err)
	}
	again.set("@alice:here.test", UserSubscriptions{Feeds: []UserFeed{{Room: "!feed:x.test", Weight: 1}}, Threshold: 1})
	x := again.UserExtent("@alice:here.test", now.Add(-time.Hour).UnixMilli())
	if len(x) != 1 || x[0].Events != 1000 || x[0].Invites != 1 || x[0].Users != 10 || x[0].Rooms != 2 || x[0].Servers != 1 {
		t.Errorf("extent read back: %+v", x)
	}
}
