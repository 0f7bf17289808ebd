// Package regtokens owns registration tokens (spec "Token-authenticated
// registration"): whether a token is valid, and the reservation that
// counts a registration in progress against a token's allowed uses, so
// that a one-use token cannot start two registrations.
package regtokens

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strconv"
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
	CreateRegistrationToken(ctx context.Context, t store.RegistrationToken) error
	ListRegistrationTokens(ctx context.Context) ([]store.RegistrationToken, error)
	UpdateRegistrationToken(ctx context.Context, token string, usesAllowed, expiryTime *int64) error
	DeleteRegistrationToken(ctx context.Context, token string) error
}

// Service decides on and reserves registration tokens, and manages them
// for the admin API.
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

// Token is a registration token as the admin API shows it (Synapse's
// field names).
type Token struct {
	Token       string `json:"token"`
	UsesAllowed *int64 `json:"uses_allowed"`
	Pending     int64  `json:"pending"`
	Completed   int64  `json:"completed"`
	ExpiryTime  *int64 `json:"expiry_time"`
}

// Valid reports whether the token can start another registration at
// nowTS.
func (t Token) Valid(nowTS int64) bool { return store.RegistrationToken(t).Valid(nowTS) }

// ValidSyntax reports whether token is in the spec's alphabet and at most
// 64 characters long.
func ValidSyntax(token string) bool { return validSyntax.MatchString(token) }

// List is every token; with valid set, only those that are (or are not)
// valid now.
func (s *Service) List(ctx context.Context, valid *bool) ([]Token, error) {
	rows, err := s.st.ListRegistrationTokens(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now().UnixMilli()
	kept := make([]Token, 0, len(rows))
	for _, r := range rows {
		if valid == nil || r.Valid(now) == *valid {
			kept = append(kept, Token(r))
		}
	}
	return kept, nil
}

// NewToken is an admin's request for a token: the token itself, or a
// random one of Length characters (16 by default), and its limits.
type NewToken struct {
	Token       *string
	Length      *int
	UsesAllowed *int64
	ExpiryTime  *int64
}

// alphabet is the spec's registration token alphabet.
const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-"

// Create makes a token, as Synapse's admin API does.
func (s *Service) Create(ctx context.Context, req NewToken) (Token, error) {
	t := Token{UsesAllowed: req.UsesAllowed, ExpiryTime: req.ExpiryTime}
	if err := s.checkLimits(t); err != nil {
		return Token{}, err
	}
	if req.Token != nil {
		t.Token = *req.Token
		if !ValidSyntax(t.Token) {
			return Token{}, mxerr.InvalidParam("token must consist only of [A-Za-z0-9._~-] and be at most 64 characters")
		}
	} else {
		n := 16
		if req.Length != nil {
			if *req.Length < 1 || *req.Length > 64 {
				return Token{}, mxerr.InvalidParam("length must be between 1 and 64")
			}
			n = *req.Length
		}
		t.Token = randomToken(n)
	}
	if err := s.st.CreateRegistrationToken(ctx, store.RegistrationToken(t)); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return Token{}, &mxerr.Error{Status: http.StatusBadRequest, Code: "M_INVALID_PARAM", Message: "Token already exists"}
		}
		return Token{}, err
	}
	return t, nil
}

func (s *Service) checkLimits(t Token) error {
	if t.UsesAllowed != nil && *t.UsesAllowed < 0 {
		return mxerr.InvalidParam("uses_allowed must be a non-negative integer or null")
	}
	if t.ExpiryTime != nil && *t.ExpiryTime < s.now().UnixMilli() {
		return mxerr.InvalidParam("expiry_time must not be in the past")
	}
	return nil
}

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// Get is one token; M_NOT_FOUND if there is none.
func (s *Service) Get(ctx context.Context, token string) (Token, error) {
	t, err := s.st.GetRegistrationToken(ctx, token)
	if errors.Is(err, store.ErrNotFound) {
		return Token{}, mxerr.NotFound("No such registration token: %s", strconv.Quote(token))
	}
	return Token(t), err
}

// Update changes a token's limits: change sets them on the current
// token (a field it leaves alone keeps its value).
func (s *Service) Update(ctx context.Context, token string, change func(*Token) error) (Token, error) {
	row, err := s.st.GetRegistrationToken(ctx, token)
	if errors.Is(err, store.ErrNotFound) {
		return Token{}, mxerr.NotFound("No such registration token")
	}
	if err != nil {
		return Token{}, err
	}
	cur := Token(row)
	if err := change(&cur); err != nil {
		return Token{}, err
	}
	if err := s.checkLimits(cur); err != nil {
		return Token{}, err
	}
	err = s.st.UpdateRegistrationToken(ctx, cur.Token, cur.UsesAllowed, cur.ExpiryTime)
	if errors.Is(err, store.ErrNotFound) {
		// Deleted since it was read.
		return Token{}, mxerr.NotFound("No such registration token")
	}
	if err != nil {
		return Token{}, err
	}
	return s.Get(ctx, token)
}

// Delete removes a token.
func (s *Service) Delete(ctx context.Context, token string) error {
	err := s.st.DeleteRegistrationToken(ctx, token)
	if errors.Is(err, store.ErrNotFound) {
		return mxerr.NotFound("No such registration token")
	}
	return err
}
