package push

import (
	"context"
	"time"

	"github.com/myelin-chat/myelin/internal/periodic"
)

// How long notifications are kept, as Synapse keeps its push actions:
// read ones for a day, highlights (read or not) and unread ones for 30
// days. /notifications lists what is kept. An unread notification that
// expires stops counting, so a room left unread for a month shows what
// came in that month.
const (
	keepRead = 24 * time.Hour
	keepAll  = 30 * 24 * time.Hour
)

// pruneBatch bounds the notifications one transaction looks at.
const pruneBatch = 1000

// Prune deletes the notifications older than they are kept, every
// user's in turn, and reports how many went.
func (s *Service) Prune(ctx context.Context, now time.Time) (int, error) {
	readUpto, allUpto, err := s.store.PushPruneBounds(ctx, now.Add(-keepRead).UnixMilli(), now.Add(-keepAll).UnixMilli())
	if err != nil || readUpto == 0 {
		return 0, err
	}
	total := 0
	for after := ""; ; {
		users, err := s.store.UserIDsAfter(ctx, after, 500)
		if err != nil {
			return total, err
		}
		for _, u := range users {
			n, err := s.pruneUser(ctx, u, readUpto, allUpto)
			total += n
			if err != nil {
				return total, err
			}
		}
		if len(users) < 500 {
			break
		}
		after = users[len(users)-1]
	}
	if allUpto > 0 {
		if _, err := s.store.PrunePushEvents(ctx, allUpto); err != nil {
			return total, err
		}
	}
	return total, nil
}

func (s *Service) pruneUser(ctx context.Context, userID string, readUpto, allUpto int64) (int, error) {
	total := 0
	for after := int64(0); ; {
		var deleted int
		var done bool
		err := func() error {
			// Expiring unread notifications changes the counters:
			// ordered against the cache as any other change.
			s.countsMu.Lock()
			defer s.countsMu.Unlock()
			expired, n, next, fin, err := s.store.PruneUserNotifications(ctx, userID, after, readUpto, allUpto, pruneBatch)
			for _, d := range expired {
				s.unread.Remove(countsKey{d.UserID, d.RoomID})
			}
			deleted, after, done = n, next, fin
			return err
		}()
		total += deleted
		if err != nil || done {
			return total, err
		}
	}
}

// RunPruning prunes notifications hourly until ctx ends.
func (s *Service) RunPruning(ctx context.Context) error {
	periodic.NowAndEvery(ctx, time.Hour, func() {
		if n, err := s.Prune(ctx, time.Now()); err != nil && ctx.Err() == nil {
			s.opts.Log.Warn("push: pruning old notifications", "err", err)
		} else if n > 0 {
			s.opts.Log.Info("push: pruned old notifications", "count", n)
		}
	})
	return nil
}
