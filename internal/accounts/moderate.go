package accounts

import (
	"context"
	"errors"

	"github.com/myelin-chat/myelin/internal/mxerr"
)

// Restriction is one of an administrator's reversible restrictions of an
// account (spec "Account moderation").
type Restriction int

const (
	// Suspension: see SetSuspended.
	Suspension Restriction = iota
	// Lock: see SetLocked.
	Lock
)

// ModerationRules are what the endpoint that reads or changes a
// restriction refuses besides non-local and unknown users.
type ModerationRules struct {
	// SparesAdmins refuses another server admin as the target, and the
	// caller's own account as the target of a change: spec v1.18's
	// /admin/suspend and /admin/lock (MSC4323). Synapse's own admin API
	// applies neither.
	SparesAdmins bool
	// NotLocal is the error for a user of another server.
	NotLocal *mxerr.Error
}

// ModerationTarget resolves the user an administrator reads or changes
// the restrictions of. The caller checked that adminID is a server
// admin before this looks the account up, so that nobody else learns
// which accounts exist (spec).
func (s *Service) ModerationTarget(ctx context.Context, adminID, userID string, change bool, rules ModerationRules) (User, error) {
	lp, local := s.LocalpartOf(userID)
	if !local {
		return User{}, rules.NotLocal
	}
	u, err := s.User(ctx, lp)
	if errors.Is(err, ErrNoSuchUser) || err == nil && u.Deactivated {
		return User{}, mxerr.NotFound("User not found")
	}
	if err != nil {
		return User{}, err
	}
	if rules.SparesAdmins {
		if u.UserID == adminID {
			if change {
				return User{}, mxerr.Forbidden("You cannot restrict your own account")
			}
		} else if u.IsAdmin {
			return User{}, mxerr.Forbidden("The target user is a server administrator")
		}
	}
	return u, nil
}

// Restrict applies or lifts a restriction of a local account.
func (s *Service) Restrict(ctx context.Context, localpart string, r Restriction, on bool) error {
	if r == Lock {
		return s.SetLocked(ctx, localpart, on)
	}
	return s.SetSuspended(ctx, localpart, on)
}
