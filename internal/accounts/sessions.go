package accounts

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"time"

	"github.com/myelin-chat/myelin/internal/ident"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/store"
)

// Login is what a successful login or registration hands the client.
type Login struct {
	UserID       string
	DeviceID     string
	AccessToken  string
	RefreshToken string
	ExpiresInMS  int64 // 0 when the access token does not expire
}

// SessionRequest asks for a new device session.
type SessionRequest struct {
	Localpart   string
	DeviceID    string // empty: generate one
	DisplayName *string
	Refresh     bool
	IP, Agent   string
}

// StartSession issues an access token (and refresh token when asked) for
// a device, creating the device if it is new.
func (s *Service) StartSession(ctx context.Context, r SessionRequest) (Login, error) {
	if err := CheckDeviceDisplayName(r.DisplayName); err != nil {
		return Login{}, err
	}
	if r.DeviceID == "" {
		r.DeviceID = newDeviceID()
	} else if len(r.DeviceID) > 255 {
		return Login{}, mxerr.InvalidParam("device_id is too long")
	}
	now := s.now()
	access := randomToken("myl_")
	ns := store.NewSession{
		Localpart: r.Localpart, DeviceID: r.DeviceID, DisplayName: r.DisplayName,
		AccessHash: HashToken(access), NowTS: now.UnixMilli(), IP: r.IP, Agent: r.Agent,
	}
	out := Login{UserID: s.UserID(r.Localpart), DeviceID: r.DeviceID, AccessToken: access}
	if r.Refresh {
		out.RefreshToken = randomToken("mylr_")
		ns.RefreshHash = HashToken(out.RefreshToken)
		ns.ExpiresTS = now.Add(s.opts.RefreshableTokenLifetime).UnixMilli()
		out.ExpiresInMS = s.opts.RefreshableTokenLifetime.Milliseconds()
	}
	if err := s.store.CreateSession(ctx, ns); err != nil {
		return Login{}, err
	}
	// Reusing a device ID revoked the device's earlier tokens.
	s.tokens.invalidate(r.Localpart)
	return out, nil
}

// Refresh exchanges a refresh token for a new access and refresh token.
func (s *Service) Refresh(ctx context.Context, refreshToken string) (Login, error) {
	// A locked account obtains no new access token until it is unlocked
	// (spec "Soft logout"); its refresh token is left as it was, so that
	// the session resumes then.
	if lp, err := s.store.RefreshTokenOwner(ctx, HashToken(refreshToken)); err == nil {
		if u, err := s.store.GetUser(ctx, lp); err != nil && !errors.Is(err, store.ErrNotFound) {
			return Login{}, err
		} else if err == nil && u.Locked {
			return Login{}, mxerr.UserLocked()
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return Login{}, err
	}
	now := s.now()
	out := Login{AccessToken: randomToken("myl_"), RefreshToken: randomToken("mylr_"), ExpiresInMS: s.opts.RefreshableTokenLifetime.Milliseconds()}
	ns, err := s.store.Refresh(ctx, HashToken(refreshToken), store.NewSession{
		AccessHash: HashToken(out.AccessToken), RefreshHash: HashToken(out.RefreshToken),
		ExpiresTS: now.Add(s.opts.RefreshableTokenLifetime).UnixMilli(), NowTS: now.UnixMilli(),
	})
	if errors.Is(err, store.ErrNotFound) {
		return Login{}, mxerr.UnknownToken("Unknown refresh token").With("soft_logout", false)
	}
	if err != nil {
		return Login{}, err
	}
	s.tokens.invalidate(ns.Localpart)
	out.UserID, out.DeviceID = s.UserID(ns.Localpart), ns.DeviceID
	return out, nil
}

// Caller is who an access token belongs to.
type Caller struct {
	User      User
	DeviceID  string
	TokenHash string
}

// Authenticate resolves an access token. An expired refreshable token is
// M_UNKNOWN_TOKEN with soft_logout, telling the client to refresh, unless
// allowExpired is set.
func (s *Service) Authenticate(ctx context.Context, token, ip, agent string, allowExpired bool) (Caller, error) {
	if token == "" {
		return Caller{}, mxerr.UnknownToken("Unrecognised access token").With("soft_logout", false)
	}
	hash := HashToken(token)
	now := s.now()
	o, cached := s.tokens.get(hash, now)
	if !cached {
		started := s.tokens.start()
		var err error
		o, err = s.store.LookupAccessToken(ctx, hash)
		if errors.Is(err, store.ErrNotFound) {
			return Caller{}, mxerr.UnknownToken("Unrecognised access token").With("soft_logout", false)
		}
		if err != nil {
			return Caller{}, err
		}
		s.tokens.put(hash, o, started, now)
	}
	if o.ExpiresTS != 0 && o.ExpiresTS <= now.UnixMilli() && !allowExpired {
		return Caller{}, mxerr.UnknownToken("Access token has expired").With("soft_logout", true)
	}
	if o.User.Deactivated {
		return Caller{}, mxerr.UnknownToken("This account has been deactivated").With("soft_logout", false)
	}
	if !o.Used && o.RefreshHash != "" {
		if err := s.store.MarkAccessTokenUsed(ctx, hash, o.RefreshHash); err != nil {
			return Caller{}, err
		}
		s.tokens.invalidate(o.User.Localpart)
	}
	s.touch(ctx, o.User.Localpart, o.DeviceID, ip, agent)
	return Caller{User: userFrom(o.User), DeviceID: o.DeviceID, TokenHash: hash}, nil
}

func (s *Service) touch(ctx context.Context, localpart, deviceID, ip, agent string) {
	key := localpart + "|" + deviceID
	now := s.now()
	s.seenMu.Lock()
	last, ok := s.lastSeen[key]
	fresh := ok && now.Sub(last) < seenInterval
	if !fresh {
		s.lastSeen[key] = now
	}
	s.seenMu.Unlock()
	if !fresh {
		// Last-seen data is advisory: a failed write must not fail the request.
		_ = s.store.TouchDevice(ctx, localpart, deviceID, now.UnixMilli(), ip, agent)
	}
}

// Logout revokes the access token identified by its hash.
func (s *Service) Logout(ctx context.Context, localpart, deviceID string) error {
	return s.DeleteDevices(ctx, localpart, []string{deviceID})
}

// LogoutAll removes every device of the user, and so every token.
func (s *Service) LogoutAll(ctx context.Context, localpart string) error {
	removed, err := s.store.DeleteOtherDevices(ctx, localpart, "")
	s.tokens.invalidate(localpart)
	if err != nil {
		return err
	}
	return s.removed(ctx, localpart, removed)
}

// PasswordLogin resolves a login identifier (user ID or localpart) and
// checks the password.
func (s *Service) PasswordLogin(ctx context.Context, user, password string) (User, error) {
	lp, err := s.ResolveLoginUser(ctx, user)
	if err != nil {
		return User{}, err
	}
	u, err := s.VerifyPassword(ctx, lp, password)
	if err != nil {
		return User{}, err
	}
	if u.Deactivated {
		return User{}, mxerr.UserDeactivated("This account has been deactivated")
	}
	if u.Locked {
		// Spec "Account locking": no new access token until unlocked.
		return User{}, mxerr.UserLocked()
	}
	return u, nil
}

// ResolveLoginUser maps what a user typed to a localpart: a full user ID
// on this server or a bare localpart, matched case-insensitively as
// Synapse does.
func (s *Service) ResolveLoginUser(ctx context.Context, user string) (string, error) {
	if ident.CheckText(user) != nil {
		// No account can have such a name: an unknown user, as Synapse
		// answers, on every database engine.
		return "", mxerr.Forbidden("Invalid username or password")
	}
	lp := user
	if strings.HasPrefix(user, "@") {
		var local bool
		if lp, local = s.LocalpartOf(user); !local {
			return "", mxerr.Forbidden("Invalid username or password")
		}
	}
	if _, err := s.store.GetUser(ctx, lp); err == nil {
		return lp, nil
	}
	return strings.ToLower(lp), nil
}

// CreateLoginToken makes a single-use m.login.token for the user.
func (s *Service) CreateLoginToken(ctx context.Context, localpart string) (string, int64, error) {
	token := randomToken("mylt_")
	lifetime := s.opts.LoginTokenLifetime
	if err := s.store.InsertLoginToken(ctx, HashToken(token), localpart, s.now().Add(lifetime).UnixMilli()); err != nil {
		return "", 0, err
	}
	return token, lifetime.Milliseconds(), nil
}

// TokenLogin consumes an m.login.token.
func (s *Service) TokenLogin(ctx context.Context, token string) (User, error) {
	lp, err := s.store.ConsumeLoginToken(ctx, HashToken(token), s.now().UnixMilli())
	if errors.Is(err, store.ErrNotFound) {
		return User{}, mxerr.Forbidden("Invalid or expired login token")
	}
	if err != nil {
		return User{}, err
	}
	u, err := s.store.GetUser(ctx, lp)
	if errors.Is(err, store.ErrNotFound) {
		// Accounts are never deleted, so this is a token whose user is
		// gone: as invalid as one never issued.
		return User{}, mxerr.Forbidden("Invalid or expired login token")
	}
	if err != nil {
		return User{}, err
	}
	if u.Deactivated {
		return User{}, mxerr.UserDeactivated("This account has been deactivated")
	}
	if u.Locked {
		return User{}, mxerr.UserLocked()
	}
	return userFrom(u), nil
}

// openIDTokenLifetime is Synapse's: an hour.
const openIDTokenLifetime = time.Hour

// CreateOpenIDToken makes a token that proves to a third party, through
// /openid/userinfo, who the user is; it grants nothing else.
func (s *Service) CreateOpenIDToken(ctx context.Context, localpart string) (string, time.Duration, error) {
	token := randomToken("myoi_")
	if err := s.store.InsertOpenIDToken(ctx, HashToken(token), localpart, s.now().Add(openIDTokenLifetime).UnixMilli()); err != nil {
		return "", 0, err
	}
	return token, openIDTokenLifetime, nil
}

// OpenIDUser returns the user ID an OpenID token was issued to.
func (s *Service) OpenIDUser(ctx context.Context, token string) (string, error) {
	lp, err := s.store.OpenIDTokenUser(ctx, HashToken(token), s.now().UnixMilli())
	if errors.Is(err, store.ErrNotFound) {
		return "", mxerr.UnknownToken("Invalid or expired OpenID token")
	}
	if err != nil {
		return "", err
	}
	return "@" + lp + ":" + s.opts.ServerName, nil
}

// newDeviceID makes a device ID in Synapse's style: ten capital letters.
func newDeviceID() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = 'A' + b[i]%26
	}
	return string(b)
}
