// Package accounts owns local users: registration, passwords, login
// sessions and their tokens, devices and profiles.
package accounts

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/myelin-chat/myelin/internal/cache"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/store"
)

// User is a local account as the service hands it out. It is the
// service's own type, not the store's row, so that handlers never see
// storage types (and never the password hash).
type User struct {
	Localpart   string
	UserID      string
	IsAdmin     bool
	IsGuest     bool
	UserType    string
	Deactivated bool
	CreatedTS   int64
	// Locked and Suspended: see SetLocked and SetSuspended.
	Locked, Suspended bool
	// ShadowBanned: the user's sends are answered but never delivered
	// (Synapse's shadow-ban). Erased: deactivated with erase.
	ShadowBanned, Erased bool
}

func userFrom(u store.User) User {
	return User{Localpart: u.Localpart, UserID: u.UserID, IsAdmin: u.IsAdmin, IsGuest: u.IsGuest,
		UserType: u.UserType, Deactivated: u.Deactivated, CreatedTS: u.CreatedTS, Locked: u.Locked, Suspended: u.Suspended,
		ShadowBanned: u.ShadowBanned, Erased: u.Erased}
}

// Device is one of a user's devices as the service hands it out.
type Device struct {
	Localpart     string
	DeviceID      string
	DisplayName   *string
	CreatedTS     int64
	LastSeenTS    int64
	LastSeenIP    string
	LastSeenAgent string
}

// Store is the storage the accounts service needs.
type Store interface {
	CreateUser(ctx context.Context, u store.User) error
	GetUser(ctx context.Context, localpart string) (store.User, error)
	UserExists(ctx context.Context, localpart string) (bool, error)
	SetPasswordHash(ctx context.Context, localpart, hash string) error
	SetAdmin(ctx context.Context, localpart string, admin bool) error
	UpgradeGuest(ctx context.Context, localpart, hash string) error
	DeactivateUser(ctx context.Context, localpart string, erase bool) error
	ErasedUserIDs(ctx context.Context) ([]string, error)
	SetUserLocked(ctx context.Context, localpart string, locked bool) error
	SetUserSuspended(ctx context.Context, localpart string, suspended bool) error

	CreateSession(ctx context.Context, s store.NewSession) error
	LookupAccessToken(ctx context.Context, hash string) (store.TokenOwner, error)
	MarkAccessTokenUsed(ctx context.Context, hash, refreshHash string) error
	Refresh(ctx context.Context, oldHash string, next store.NewSession) (store.NewSession, error)
	RefreshTokenOwner(ctx context.Context, hash string) (string, error)
	InsertLoginToken(ctx context.Context, hash, localpart string, expiresTS int64) error
	ConsumeLoginToken(ctx context.Context, hash string, nowTS int64) (string, error)
	InsertOpenIDToken(ctx context.Context, hash, localpart string, expiresTS int64) error
	OpenIDTokenUser(ctx context.Context, hash string, nowTS int64) (string, error)

	GetDevice(ctx context.Context, localpart, deviceID string) (store.Device, error)
	CreateDevice(ctx context.Context, localpart, deviceID string, nowTS int64) (created bool, err error)
	ListDevices(ctx context.Context, localpart string) ([]store.Device, error)
	SetDeviceDisplayName(ctx context.Context, localpart, deviceID string, name *string) error
	DeleteDevices(ctx context.Context, localpart string, deviceIDs []string) error
	DeleteOtherDevices(ctx context.Context, localpart, keep string) ([]string, error)
	TouchDevice(ctx context.Context, localpart, deviceID string, ts int64, ip, agent string) error

	Profile(ctx context.Context, localpart string) (map[string]json.RawMessage, error)
	SetProfileField(ctx context.Context, localpart, field string, value json.RawMessage) error
	DeleteProfileField(ctx context.Context, localpart, field string) error
}

// Options tune the service.
type Options struct {
	ServerName string
	BcryptCost int
	// RefreshableTokenLifetime is the lifetime of access tokens issued with
	// a refresh token; other access tokens do not expire.
	RefreshableTokenLifetime time.Duration
	LoginTokenLifetime       time.Duration

	// DevicesRemoved is told of deleted devices (nil deviceIDs: all of
	// the user's), so that services owning per-device data (end-to-end
	// keys, to-device messages) drop it without accounts depending on
	// them. Its error fails the removal's request. Optional.
	DevicesRemoved func(ctx context.Context, userID string, deviceIDs []string) error
	// DeviceRenamed is told that a device's display name changed (it
	// is part of the user's device list, which other servers are sent).
	// Its error fails the rename's request. Optional.
	DeviceRenamed func(ctx context.Context, userID, deviceID string) error
	// Reserved are localparts nobody may register: the server notices
	// system user's (Synapse refuses it with M_EXCLUSIVE).
	Reserved []string
	// Reputation refuses registrations of user IDs the server's
	// reputation feeds list (nil: none).
	Reputation RegistrationScreen
}

// Service is the accounts domain service.
type Service struct {
	store Store
	opts  Options
	now   func() time.Time

	// seenMu guards lastSeen, which throttles last-seen writes to one per
	// device per seenInterval instead of one per request.
	seenMu   sync.Mutex
	lastSeen map[string]time.Time

	tokens *tokenCache
	erased erasedCache
}

// removed runs the device removal hook after devices went.
func (s *Service) removed(ctx context.Context, localpart string, deviceIDs []string) error {
	if s.opts.DevicesRemoved == nil {
		return nil
	}
	return s.opts.DevicesRemoved(ctx, s.UserID(localpart), deviceIDs)
}

const seenInterval = time.Minute

// New makes the service.
func New(st Store, opts Options) *Service {
	s := &Service{store: st, opts: opts, now: time.Now, lastSeen: map[string]time.Time{}, tokens: newTokenCache(10000, time.Minute)}
	return cache.TrimWhenIdle(s)
}

// TrimIdle forgets, while the server is quiet (cache.TrimWhenIdle), the
// last-seen times that no longer hold a write back (older than
// seenInterval) and the cached tokens get would no longer return, and
// reports how many it dropped. Neither changes what a request does: a
// device's next request writes its last-seen time as it would have, a
// token is looked up as it would have been. After issue 20's load run
// these records (a key and a time per device, a token's owner) were a
// few thousand of the small objects alive a minute after the load,
// pinning the spans the burst filled.
func (s *Service) TrimIdle() int {
	now := s.now()
	n := 0
	s.seenMu.Lock()
	for key, last := range s.lastSeen {
		if now.Sub(last) >= seenInterval {
			delete(s.lastSeen, key)
			n++
		}
	}
	if n > 0 {
		s.lastSeen = cache.Resized(s.lastSeen)
	}
	s.seenMu.Unlock()
	return n + s.tokens.trimExpired(now)
}

// ServerName is the server's name, the domain of its user IDs.
func (s *Service) ServerName() string { return s.opts.ServerName }

// UserID makes the full user ID of a localpart.
func (s *Service) UserID(localpart string) string { return "@" + localpart + ":" + s.opts.ServerName }

// LocalpartOf returns the localpart of a user ID on this server, and
// whether the user ID is local.
func (s *Service) LocalpartOf(userID string) (string, bool) {
	if !strings.HasPrefix(userID, "@") {
		return "", false
	}
	lp, server, ok := strings.Cut(userID[1:], ":")
	return lp, ok && server == s.opts.ServerName
}

// ValidateLocalpart applies the user ID grammar that registration
// enforces (historical user IDs with other characters may still log in).
func (s *Service) ValidateLocalpart(lp string) error {
	if lp == "" {
		return mxerr.InvalidUsername("User ID cannot be empty")
	}
	for _, r := range lp {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("._=-/+", r)) {
			return mxerr.InvalidUsername("User ID can only contain characters a-z, 0-9, or '._=-/+'")
		}
	}
	if len(s.UserID(lp)) > 255 {
		return mxerr.InvalidUsername("User ID may not be longer than 255 characters")
	}
	return nil
}

// ValidateNewLocalpart adds Synapse's reservations for registration:
// "_" starts the application services' namespaces and all-numeric
// localparts are the ones guest accounts get.
func (s *Service) ValidateNewLocalpart(lp string) error {
	if err := s.ValidateLocalpart(lp); err != nil {
		return err
	}
	if lp[0] == '_' {
		return mxerr.InvalidUsername("User ID may not begin with _")
	}
	if strings.Trim(lp, "0123456789") == "" {
		return mxerr.InvalidUsername("Numeric user IDs are reserved for guest users")
	}
	if slices.Contains(s.opts.Reserved, lp) {
		return mxerr.Exclusive("This user ID is reserved")
	}
	return nil
}

// CheckAvailable answers /register/available.
func (s *Service) CheckAvailable(ctx context.Context, lp string) error {
	if err := s.ValidateNewLocalpart(lp); err != nil {
		return err
	}
	if err := s.refuseListedLocalpart(ctx, lp); err != nil {
		return err
	}
	exists, err := s.store.UserExists(ctx, lp)
	if err != nil {
		return err
	}
	if exists {
		return mxerr.UserInUse("User ID already taken")
	}
	return nil
}

// NewAccount describes an account to create.
type NewAccount struct {
	Localpart string // empty: generate one
	Password  string // empty: no password login (guests)
	Admin     bool
	Guest     bool
	UserType  string
}

// CreateAccount creates a local account.
func (s *Service) CreateAccount(ctx context.Context, a NewAccount) (User, error) {
	if a.Localpart == "" {
		return s.createGenerated(ctx, a)
	}
	hash := ""
	if a.Password != "" {
		var err error
		if hash, err = s.hashPassword(a.Password); err != nil {
			return User{}, err
		}
	}
	u := store.User{
		Localpart: a.Localpart, UserID: s.UserID(a.Localpart), PasswordHash: hash,
		IsAdmin: a.Admin, IsGuest: a.Guest, UserType: a.UserType, CreatedTS: s.now().UnixMilli(),
	}
	if err := s.store.CreateUser(ctx, u); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return User{}, mxerr.UserInUse("User ID already taken")
		}
		return User{}, err
	}
	if !a.Guest {
		// Synapse gives new accounts their localpart as display name, so
		// that member lists never show a bare user ID.
		name, _ := json.Marshal(a.Localpart)
		if err := s.store.SetProfileField(ctx, a.Localpart, "displayname", name); err != nil {
			return User{}, err
		}
	}
	return userFrom(u), nil
}

// createGenerated picks a numeric localpart, as Synapse does for guests
// and registrations without a username.
func (s *Service) createGenerated(ctx context.Context, a NewAccount) (User, error) {
	for range 10 {
		a.Localpart = randomDigits(12)
		u, err := s.CreateAccount(ctx, a)
		if e, ok := mxerr.As(err); ok && e.Code == "M_USER_IN_USE" {
			continue
		}
		return u, err
	}
	return User{}, errors.New("accounts: could not generate a free user ID")
}

// UpgradeGuest gives a guest account a password, making it a full
// account; M_FORBIDDEN when it is no guest account (any more).
func (s *Service) UpgradeGuest(ctx context.Context, localpart, password string) error {
	hash, err := s.hashPassword(password)
	if err != nil {
		return err
	}
	err = s.store.UpgradeGuest(ctx, localpart, hash)
	s.tokens.invalidate(localpart)
	if errors.Is(err, store.ErrNotFound) {
		// No guest account of that name: another request upgraded it.
		return mxerr.Forbidden("The guest account was upgraded already")
	}
	return err
}

// ErrNoSuchUser is User's answer for a localpart without an account: a
// Matrix M_NOT_FOUND that callers telling the case apart test with
// errors.Is.
var ErrNoSuchUser = mxerr.NotFound("User not found")

// User loads a local account; ErrNoSuchUser if there is none.
func (s *Service) User(ctx context.Context, localpart string) (User, error) {
	u, err := s.store.GetUser(ctx, localpart)
	if errors.Is(err, store.ErrNotFound) {
		return User{}, ErrNoSuchUser
	}
	if err != nil {
		return User{}, err
	}
	return userFrom(u), nil
}

// SetAdmin grants or revokes server admin rights.
func (s *Service) SetAdmin(ctx context.Context, localpart string, admin bool) error {
	err := s.store.SetAdmin(ctx, localpart, admin)
	s.tokens.invalidate(localpart)
	return err
}

func (s *Service) hashPassword(pw string) (string, error) {
	if len(pw) > 72 {
		// bcrypt only reads 72 bytes; pre-hash so that long passphrases
		// keep all their strength instead of failing.
		sum := sha256.Sum256([]byte(pw))
		pw = "sha256:" + base64.RawStdEncoding.EncodeToString(sum[:])
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), s.opts.BcryptCost)
	return string(h), err
}

func checkPassword(hash, pw string) bool {
	if hash == "" {
		return false
	}
	if len(pw) > 72 {
		sum := sha256.Sum256([]byte(pw))
		pw = "sha256:" + base64.RawStdEncoding.EncodeToString(sum[:])
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)) == nil
}

// VerifyPassword checks a user's password; M_FORBIDDEN when it is wrong,
// M_USER_DEACTIVATED for deactivated accounts.
func (s *Service) VerifyPassword(ctx context.Context, localpart, pw string) (User, error) {
	u, err := s.store.GetUser(ctx, localpart)
	if errors.Is(err, store.ErrNotFound) {
		// Spend the time a real check takes, so that timing does not tell
		// which user IDs exist.
		_ = bcrypt.CompareHashAndPassword(dummyHash, []byte(pw))
		return User{}, mxerr.Forbidden("Invalid username or password")
	}
	if err != nil {
		return User{}, err
	}
	if !checkPassword(u.PasswordHash, pw) {
		if u.Deactivated {
			return User{}, mxerr.UserDeactivated("This account has been deactivated")
		}
		return User{}, mxerr.Forbidden("Invalid username or password")
	}
	return userFrom(u), nil
}

var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("not a password"), bcrypt.MinCost)

// ChangePassword sets a new password and, when logoutDevices is set, logs
// out every device but keepDevice, returning the devices removed.
func (s *Service) ChangePassword(ctx context.Context, localpart, pw string, logoutDevices bool, keepDevice string) ([]string, error) {
	if pw == "" {
		return nil, mxerr.MissingParam("Missing new_password")
	}
	hash, err := s.hashPassword(pw)
	if err != nil {
		return nil, err
	}
	if err := s.store.SetPasswordHash(ctx, localpart, hash); err != nil {
		return nil, err
	}
	if !logoutDevices {
		return nil, nil
	}
	removed, err := s.store.DeleteOtherDevices(ctx, localpart, keepDevice)
	s.tokens.invalidate(localpart)
	if err != nil {
		return removed, err
	}
	return removed, s.removed(ctx, localpart, removed)
}

// Deactivate closes an account for good: its devices and tokens go, its
// user ID is never reused; erase also removes its profile.
func (s *Service) Deactivate(ctx context.Context, localpart string, erase bool) error {
	err := s.store.DeactivateUser(ctx, localpart, erase)
	s.tokens.invalidate(localpart)
	if err != nil {
		return err
	}
	if erase {
		s.erased.set(s.UserID(localpart), true)
	}
	return s.removed(ctx, localpart, nil)
}

func randomDigits(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = '0' + b[i]%10
	}
	if b[0] == '0' {
		b[0] = '1'
	}
	return string(b)
}

func randomToken(prefix string) string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// HashToken is how tokens are stored: the database never holds a value
// that could be replayed.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
