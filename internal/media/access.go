package media

import (
	"context"
	"time"

	"github.com/myelin-chat/myelin/internal/store"
)

// When media was last read (Synapse's last_access_ts): each download or
// thumbnail of a media notes the time in memory, and the notes are
// written in one batch every accessFlushInterval, so that a media
// downloaded a thousand times a minute costs one write a minute, as
// Synapse batches its access times. The admin API's readers of the
// times (media info, a user's media list, delete by date, the remote
// cache purge) write the pending notes first, so they never act on a
// stale time; a stop writes them too.

// accessFlushInterval is how often pending access times are written.
const accessFlushInterval = time.Minute

// maxPendingAccesses bounds the notes kept between writes: past it, the
// worker is woken to write them early.
const maxPendingAccesses = 50000

// AccessStore records access times.
type AccessStore interface {
	SetMediaAccessTimes(ctx context.Context, times map[store.MediaRef]int64) error
}

// touch notes that mxc://server/mediaID was read now.
func (s *Service) touch(server, mediaID string) {
	now := s.now().UnixMilli()
	s.accessMu.Lock()
	s.accessed[store.MediaRef{Origin: server, MediaID: mediaID}] = now
	full := len(s.accessed) >= maxPendingAccesses
	s.accessMu.Unlock()
	if full {
		select {
		case s.accessWake <- struct{}{}:
		default:
		}
	}
}

// FlushAccessTimes writes the pending access times.
func (s *Service) FlushAccessTimes(ctx context.Context) error {
	s.accessMu.Lock()
	pending := s.accessed
	s.accessed = map[store.MediaRef]int64{}
	s.accessMu.Unlock()
	if len(pending) == 0 {
		return nil
	}
	if err := s.db.SetMediaAccessTimes(ctx, pending); err != nil {
		// Put the notes back (a newer note of the same media wins).
		s.accessMu.Lock()
		for ref, ts := range pending {
			if s.accessed[ref] < ts {
				s.accessed[ref] = ts
			}
		}
		s.accessMu.Unlock()
		return err
	}
	return nil
}

// runAccessFlush writes the pending access times every interval (or
// when too many wait) until ctx ends, and once more then.
func (s *Service) runAccessFlush(ctx context.Context) {
	t := time.NewTicker(accessFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := s.FlushAccessTimes(final); err != nil {
				s.log.Warn("media: writing access times at stop", "err", err)
			}
			return
		case <-t.C:
		case <-s.accessWake:
		}
		if err := s.FlushAccessTimes(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("media: writing access times", "err", err)
		}
	}
}
