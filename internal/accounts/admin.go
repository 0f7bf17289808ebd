package accounts

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/store"
)

// AdminStore is the storage the admin side of accounts needs beyond
// Store.
type AdminStore interface {
	ListUsers(ctx context.Context, q store.UserQuery) ([]store.UserListing, int64, error)
	LastSeen(ctx context.Context, localpart string) (int64, error)
	ReactivateUser(ctx context.Context, localpart, hash string) error
	SetUserType(ctx context.Context, localpart, userType string) error
	SetShadowBanned(ctx context.Context, localpart string, banned bool) error
	RateOverrides(ctx context.Context) ([]store.RateOverride, error)
	SetRateOverride(ctx context.Context, o store.RateOverride) error
	DeleteRateOverride(ctx context.Context, localpart string) error
	CreateDevice(ctx context.Context, localpart, deviceID string, nowTS int64) (bool, error)
}

// Admin is what Synapse's admin API for users does to accounts beyond
// the client API's operations: listing, reactivation, shadow-bans and
// rate-limit overrides. It is also the rate limiter's source of
// per-user overrides (RateOverride).
type Admin struct {
	acc   *Service
	store AdminStore

	// overrides caches every rate-limit override by user ID, loaded on
	// first use and kept current by SetRateOverride and
	// DeleteRateOverride: the limiter asks on every limited request.
	mu        sync.RWMutex
	overrides map[string]store.RateOverride
}

// NewAdmin makes the admin side of the accounts service.
func NewAdmin(st AdminStore, acc *Service) *Admin {
	return &Admin{acc: acc, store: st}
}

// UserQuery selects a page of the user list (Synapse's GET
// /_synapse/admin/v2/users parameters).
type UserQuery struct {
	UserID, Name          string
	Guests, IncludeLocked bool
	Deactivated, Admins   *bool
	// NotUserTypes leaves out users of these types ("" is no type):
	// Synapse's not_user_type.
	NotUserTypes []string
	// Order is one of Synapse's order_by values; ValidUserOrder says.
	Order       string
	Desc        bool
	From, Limit int
}

// UserListing is one user of the list.
type UserListing struct {
	User
	// DisplayName and AvatarURL are the profile's raw JSON values, ""
	// when unset.
	DisplayName, AvatarURL string
	LastSeenTS             int64
}

// ValidUserOrder reports whether the user list sorts by order.
func ValidUserOrder(order string) bool { return store.ValidUserOrder(store.UserOrder(order)) }

// ListUsers is a page of local accounts and the number matching.
func (a *Admin) ListUsers(ctx context.Context, q UserQuery) ([]UserListing, int64, error) {
	rows, total, err := a.store.ListUsers(ctx, store.UserQuery{UserID: q.UserID, Name: q.Name, Guests: q.Guests, IncludeLocked: q.IncludeLocked,
		Deactivated: q.Deactivated, Admins: q.Admins, NotUserTypes: q.NotUserTypes, Order: store.UserOrder(q.Order), Desc: q.Desc, From: q.From, Limit: q.Limit})
	if err != nil {
		return nil, 0, err
	}
	out := make([]UserListing, len(rows))
	for i, r := range rows {
		out[i] = UserListing{User: userFrom(r.User), DisplayName: r.DisplayName, AvatarURL: r.AvatarURL, LastSeenTS: r.LastSeenTS}
	}
	return out, total, nil
}

// LastSeen is when one of the user's devices was last seen (0: never).
func (a *Admin) LastSeen(ctx context.Context, localpart string) (int64, error) {
	return a.store.LastSeen(ctx, localpart)
}

// Reactivate undoes a deactivation with a new password, which Synapse
// requires (the deactivation removed the old one).
func (a *Admin) Reactivate(ctx context.Context, localpart, password string) error {
	if password == "" {
		return mxerr.InvalidParam("Must provide a password to re-activate an account.")
	}
	hash, err := a.acc.hashPassword(password)
	if err != nil {
		return err
	}
	err = a.store.ReactivateUser(ctx, localpart, hash)
	a.acc.tokens.invalidate(localpart)
	if err == nil {
		a.acc.erased.set(a.acc.UserID(localpart), false)
	}
	return notFound(err)
}

// SetUserType changes the account's user type ("" for a regular user).
func (a *Admin) SetUserType(ctx context.Context, localpart, userType string) error {
	return notFound(a.store.SetUserType(ctx, localpart, userType))
}

// SetShadowBanned shadow-bans a local account or lifts the ban,
// effective on its next request.
func (a *Admin) SetShadowBanned(ctx context.Context, localpart string, banned bool) error {
	err := a.store.SetShadowBanned(ctx, localpart, banned)
	a.acc.tokens.invalidate(localpart)
	return notFound(err)
}

func notFound(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return ErrNoSuchUser
	}
	return err
}

// RateLimit is a user's rate-limit override: messages per second and
// burst count, both 0 for no limit at all.
type RateLimit struct {
	MessagesPerSecond, BurstCount int64
}

// load fills the override cache once.
func (a *Admin) load(ctx context.Context) (map[string]store.RateOverride, error) {
	a.mu.RLock()
	m := a.overrides
	a.mu.RUnlock()
	if m != nil {
		return m, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.overrides != nil {
		return a.overrides, nil
	}
	rows, err := a.store.RateOverrides(ctx)
	if err != nil {
		return nil, err
	}
	m = make(map[string]store.RateOverride, len(rows))
	for _, o := range rows {
		m[a.acc.UserID(o.Localpart)] = o
	}
	a.overrides = m
	return m, nil
}

// GetRateLimit is a local user's override, if any.
func (a *Admin) GetRateLimit(ctx context.Context, localpart string) (RateLimit, bool, error) {
	m, err := a.load(ctx)
	if err != nil {
		return RateLimit{}, false, err
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	o, ok := m[a.acc.UserID(localpart)]
	return RateLimit{o.MessagesPerSecond, o.BurstCount}, ok, nil
}

// SetRateLimit sets a local user's override.
func (a *Admin) SetRateLimit(ctx context.Context, localpart string, rl RateLimit) error {
	if _, err := a.load(ctx); err != nil {
		return err
	}
	o := store.RateOverride{Localpart: localpart, MessagesPerSecond: rl.MessagesPerSecond, BurstCount: rl.BurstCount}
	if err := a.store.SetRateOverride(ctx, o); err != nil {
		return err
	}
	a.mu.Lock()
	a.overrides[a.acc.UserID(localpart)] = o
	a.mu.Unlock()
	return nil
}

// DeleteRateLimit removes a local user's override.
func (a *Admin) DeleteRateLimit(ctx context.Context, localpart string) error {
	if _, err := a.load(ctx); err != nil {
		return err
	}
	if err := a.store.DeleteRateOverride(ctx, localpart); err != nil {
		return err
	}
	a.mu.Lock()
	delete(a.overrides, a.acc.UserID(localpart))
	a.mu.Unlock()
	return nil
}

// RateOverride answers the rate limiter: the user's own rule, if an
// admin set one. The first call loads the overrides; should that fail,
// the user is limited as everyone is and a later call tries again.
func (a *Admin) RateOverride(userID string) (perSecond float64, burst int, ok bool) {
	a.mu.RLock()
	m := a.overrides
	a.mu.RUnlock()
	if m == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		if m, err = a.load(ctx); err != nil {
			return 0, 0, false
		}
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	o, ok := m[userID]
	return float64(o.MessagesPerSecond), int(o.BurstCount), ok
}
