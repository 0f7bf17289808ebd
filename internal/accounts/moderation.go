package accounts

import (
	"context"
	"errors"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/store"
)

// Account moderation (client-server spec "Account moderation"): an
// administrator's reversible restrictions. Here are the switches and
// who may be their target (moderate.go); the admin endpoints that flip
// them (spec v1.18's /admin/lock and /admin/suspend, Synapse's admin
// API) are in internal/admin/moderation.go.
//
// A locked account's access tokens keep working for logout only; every
// other authenticated request is 401 M_USER_LOCKED with soft_logout
// (httpapi, from Caller.Locked), and it cannot log in. A suspended
// account may read, leave, redact its own events, manage its devices and
// keys and log in, but not join, knock, invite, send or change its
// profile: 403 M_USER_SUSPENDED, as Synapse does.

// SetLocked locks or unlocks a local account, effective on its next
// request.
func (s *Service) SetLocked(ctx context.Context, localpart string, locked bool) error {
	err := s.store.SetUserLocked(ctx, localpart, locked)
	s.tokens.invalidate(localpart)
	if errors.Is(err, store.ErrNotFound) {
		return mxerr.NotFound("Unknown user")
	}
	return err
}

// SetSuspended suspends or unsuspends a local account, effective on its
// next request.
func (s *Service) SetSuspended(ctx context.Context, localpart string, suspended bool) error {
	err := s.store.SetUserSuspended(ctx, localpart, suspended)
	s.tokens.invalidate(localpart)
	if errors.Is(err, store.ErrNotFound) {
		return mxerr.NotFound("Unknown user")
	}
	return err
}
