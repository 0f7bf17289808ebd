package keys

import (
	"context"
	"sync"
	"time"

	"github.com/myelin-chat/myelin/internal/mxerr"
)

// An admin may let a user replace their cross-signing keys without
// user-interactive auth for a while (Synapse's POST
// /_synapse/admin/v1/users/{userId}/_allow_cross_signing_replacement_without_uia,
// which Ketesa offers for users who lost their recovery key and cannot
// pass UIA, e.g. behind an OIDC provider). Windows live in memory: a
// restart closes them, which only means asking again.

// replacementWindow is how long the window stays open (Synapse's).
const replacementWindow = 10 * time.Minute

// replaceWindows are the open windows, by user ID.
type replaceWindows struct {
	mu    sync.Mutex
	until map[string]time.Time
}

// AllowCrossSigningReplacement opens the window for a user, answering
// when it closes (milliseconds); 404 when the user has no master key,
// as Synapse.
func (s *Service) AllowCrossSigningReplacement(ctx context.Context, userID string) (int64, error) {
	stored, err := s.store.CrossSigningKeys(ctx, userID)
	if err != nil {
		return 0, err
	}
	if _, ok := stored[master]; !ok {
		return 0, mxerr.NotFound("No master key available")
	}
	until := s.now().Add(replacementWindow)
	s.replace.mu.Lock()
	defer s.replace.mu.Unlock()
	if s.replace.until == nil {
		s.replace.until = map[string]time.Time{}
	}
	s.replace.until[userID] = until
	return until.UnixMilli(), nil
}

// replaceableWithoutUIA reports whether the user's window is open, and
// closes it if so: one replacement per window is what it is for.
func (s *Service) replaceableWithoutUIA(userID string) bool {
	s.replace.mu.Lock()
	defer s.replace.mu.Unlock()
	until, ok := s.replace.until[userID]
	if !ok {
		return false
	}
	delete(s.replace.until, userID)
	return s.now().Before(until)
}
