package reputation

import (
	"context"
	"time"

	"github.com/myelin-chat/myelin/internal/store"
)

// ExtentStore keeps the users' extent counts (UserFilters.Hid).
type ExtentStore interface {
	AddUserExtent(ctx context.Context, xs []store.UserExtent) error
	UserExtentSince(ctx context.Context, day string) ([]store.UserExtent, error)
	PruneUserExtent(ctx context.Context, day string) error
}

// extentWriteEvery is how often the counts Hid made are written: one
// transaction for all of them, not a write per hidden event. A crash
// loses at most this much; a shutdown loses nothing (Run writes last).
const extentWriteEvery = 2 * time.Second

// extentPruneEvery is how often the days past extentDays are deleted.
const extentPruneEvery = time.Hour

// extentKey names one user's counts of one feed on one day.
type extentKey struct {
	user, day, feed string
}

// pendingOf is the counts of (userID, day, feed) not yet written, made
// when new. extentMu held.
func (u *UserFilters) pendingOf(userID, day, feed string) *store.UserExtent {
	if u.extentStore == nil {
		return &store.UserExtent{} // counted in memory only
	}
	k := extentKey{userID, day, feed}
	p := u.pending[k]
	if p == nil {
		p = &store.UserExtent{UserID: userID, Day: day, Feed: feed}
		u.pending[k] = p
	}
	return p
}

// Run reads the stored counts of the last extentDays days, then writes
// what Hid counts every extentWriteEvery until ctx ends, and once more
// then; nothing to do without a store.
func (u *UserFilters) Run(ctx context.Context) error {
	if u.extentStore == nil {
		<-ctx.Done()
		return nil
	}
	if err := u.loadExtent(ctx); err != nil && ctx.Err() == nil {
		u.log.Warn("reputation: reading users' extent counts", "err", err)
	}
	write := time.NewTicker(extentWriteEvery)
	defer write.Stop()
	prune := time.NewTicker(extentPruneEvery)
	defer prune.Stop()
	u.pruneExtent(ctx)
	for {
		select {
		case <-ctx.Done():
			// The last counts are written past the end of ctx, within
			// the shutdown's own patience.
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			u.writeExtent(final)
			cancel()
			return nil
		case <-write.C:
			u.writeExtent(ctx)
		case <-prune.C:
			u.pruneExtent(ctx)
		}
	}
}

// loadExtent adds the stored counts to those in memory (made by Hid
// since start, not stored yet: none counted twice).
func (u *UserFilters) loadExtent(ctx context.Context) error {
	stored, err := u.extentStore.UserExtentSince(ctx, u.cutoff())
	if err != nil {
		return err
	}
	u.extentMu.Lock()
	defer u.extentMu.Unlock()
	for _, s := range stored {
		x := u.extentDayOf(s.UserID, s.Day, s.Feed)
		x.events += s.Events
		x.invites += s.Invites
		for _, e := range s.Entities {
			x.add(nil, Kind(e.Kind), e.Entity)
		}
	}
	return nil
}

// writeExtent writes the pending counts in one transaction; on failure
// they are kept for the next write.
func (u *UserFilters) writeExtent(ctx context.Context) {
	u.extentMu.Lock()
	if len(u.pending) == 0 {
		u.extentMu.Unlock()
		return
	}
	batch := make([]store.UserExtent, 0, len(u.pending))
	for _, p := range u.pending {
		batch = append(batch, *p)
	}
	u.pending = map[extentKey]*store.UserExtent{}
	u.extentMu.Unlock()
	if err := u.extentStore.AddUserExtent(ctx, batch); err != nil {
		if ctx.Err() == nil {
			u.log.Warn("reputation: writing users' extent counts", "err", err, "rows", len(batch))
		}
		u.extentMu.Lock()
		for _, b := range batch {
			p := u.pendingOf(b.UserID, b.Day, b.Feed)
			p.Events += b.Events
			p.Invites += b.Invites
			p.Entities = append(p.Entities, b.Entities...)
		}
		u.extentMu.Unlock()
	}
}

func (u *UserFilters) pruneExtent(ctx context.Context) {
	if err := u.extentStore.PruneUserExtent(ctx, u.cutoff()); err != nil && ctx.Err() == nil {
		u.log.Warn("reputation: pruning users' extent counts", "err", err)
	}
}
