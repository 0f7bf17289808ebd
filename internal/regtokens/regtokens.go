// Package regtokens owns registration tokens (spec "Token-authenticated
// registration"): whether a token is valid, and the reservation that
// counts a registration in progress against a token's allowed uses, so
// that a one-use token cannot start two registrations.
package regtokens

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"time"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/store"
)

// Store is the storage behind registration tokens.
type Store interface {
	GetRegistrationToken(ctx context.Context, token string) (store.RegistrationToken, error)
	ReserveRegistrationToken(ctx context.Context, token string, nowTS int64) error
	CompleteRegistrationToken(ctx context.Context, token string) error
	ReleaseRegistrationToken(ctx context.Context, token string) error
}

// Service decides on and reserves registration tokens.
type Service struct {
	st  Store
	now func() time.Time
}

// New makes the service.
func New(st Store) *Service { return &Service{st: st, now: time.Now} }

// validSyntax is the spec's registration token alphabet and length.
var validSyntax = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,64}$`)

// Valid reports whether token could start a registration now. A token
// outside the spec's syntax is simply not valid.
func (s *Service) Valid(ctx context.Context, token string) (bool, error) {
	if !validSyntax.MatchString(token) {
		return false, nil
	}
	t, err := s.st.GetRegistrationToken(ctx, token)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return t.Valid(s.now().UnixMilli()), nil
}

// Reserve counts a registration in progress against token. A token that
// is malformed, unknown, expired or used up answers M_UNAUTHORIZED, as
// the spec's m.login.registration_token stage does.
func (s *Service) Reserve(ctx context.Context, token string) error {
	invalid := mxerr.Unauthorized("Invalid registration token")
	if !validSyntax.MatchString(token) {
		return invalid
	}
	err := s.st.ReserveRegistrationToken(ctx, token, s.now().UnixMilli())
	if errors.Is(err, store.ErrNotFound) {
		return invalid
	}
	return err
}

// Complete turns the reservation of a finished registration into a
// completed use.
func (s *Service) Complete(ctx context.Context, token string) error {
	return s.st.CompleteRegistrationToken(ctx, token)
}

// Release gives back the use reserved by an abandoned registration.
func (s *Service) Release(ctx context.Context, token string) error {
	return s.st.ReleaseRegistrationToken(ctx, token)
}

// SessionKey is where a UIA session remembers the token it reserved.
const SessionKey = "registration_token"

// SessionToken is the token a UIA session's data reserved, or "".
func SessionToken(data map[string]json.RawMessage) string {
	var token string
	if json.Unmarshal(data[SessionKey], &token) != nil {
		return ""
	}
	return token
}

// ReleaseExpired is the UIA expiry hook: an abandoned registration gives
// its token use back. Best effort: a failed release only leaves one use
// counted as pending.
func (s *Service) ReleaseExpired(ctx context.Context, data map[string]json.RawMessage) {
	if token := SessionToken(data); token != "" {
		_ = s.Release(ctx, token)
	}
}
