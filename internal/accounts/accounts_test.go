package accounts

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
	// Databases copied from one migrated once, not migrated per test.
	_ "github.com/myelin-chat/myelin/internal/testdb/migrated"
)

// clock is a settable time source for the service.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// forEachService runs fn per database engine with a fresh service whose
// clock the test controls.
func forEachService(t *testing.T, fn func(t *testing.T, s *Service, c *clock)) {
	testdb.ForEach(t, func(t *testing.T, url string) {
		db, err := store.Open(context.Background(), url, 4)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() { db.Close() })
		s := New(db, Options{
			ServerName: "hs1.test", BcryptCost: 4,
			RefreshableTokenLifetime: 5 * time.Minute, LoginTokenLifetime: 2 * time.Minute,
		})
		c := &clock{t: time.Now()}
		s.now = c.now
		fn(t, s, c)
	})
}

// wantCode fails unless err is a Matrix error with the errcode.
func wantCode(t *testing.T, what string, err error, code string) *mxerr.Error {
	t.Helper()
	e, ok := mxerr.As(err)
	if !ok || e.Code != code {
		t.Fatalf("%s: %v, want %s", what, err, code)
	}
	return e
}

func TestValidateNewLocalpart(t *testing.T) {
	s := New(nil, Options{ServerName: "hs1.test"})
	ok := []string{"alice", "a", "a.b_c=d-e/f+g", "0day", "x1", strings.Repeat("a", 255-len("@:hs1.test"))}
	for _, lp := range ok {
		if err := s.ValidateNewLocalpart(lp); err != nil {
			t.Errorf("ValidateNewLocalpart(%q): %v", lp, err)
		}
	}
	bad := []string{
		"", "Alice", "ALICE", "al ice", "al:ice", "@alice", "alice!", "ä", "_alice", "_", "123", "0",
		strings.Repeat("a", 256-len("@:hs1.test")),
	}
	for _, lp := range bad {
		wantCode(t, "ValidateNewLocalpart("+lp+")", s.ValidateNewLocalpart(lp), "M_INVALID_USERNAME")
	}
	// Historical localparts: the general grammar allows what only
	// registration reserves.
	for _, lp := range []string{"_bridge_bot", "1234"} {
		if err := s.ValidateLocalpart(lp); err != nil {
			t.Errorf("ValidateLocalpart(%q): %v", lp, err)
		}
	}
}

func TestLocalpartOf(t *testing.T) {
	s := New(nil, Options{ServerName: "hs1.test"})
	cases := []struct {
		in, lp string
		local  bool
	}{
		{"@alice:hs1.test", "alice", true},
		{"@alice:other.test", "alice", false},
		{"@alice:hs1.test:8448", "alice", false},
		{"alice", "", false},
		{"@alice", "alice", false},
	}
	for _, c := range cases {
		lp, local := s.LocalpartOf(c.in)
		if lp != c.lp || local != c.local {
			t.Errorf("LocalpartOf(%q) = %q, %v; want %q, %v", c.in, lp, local, c.lp, c.local)
		}
	}
	if got := s.UserID("alice"); got != "@alice:hs1.test" {
		t.Errorf("UserID: %s", got)
	}
}

func TestLongPasswords(t *testing.T) {
	// bcrypt reads 72 bytes; passwords that share those and differ later
	// must still be told apart.
	base := strings.Repeat("x", 72)
	long1, long2 := base+"first ending", base+"other ending"
	h1, err := New(nil, Options{BcryptCost: 4}).hashPassword(long1)
	if err != nil {
		t.Fatalf("hash: %v", err)
	}
	if !checkPassword(h1, long1) {
		t.Fatalf("a long password does not match its own hash")
	}
	for _, wrong := range []string{long2, base, base + "first endin", long1 + "!"} {
		if checkPassword(h1, wrong) {
			t.Errorf("%d-byte password %q matches the hash of another", len(wrong), wrong)
		}
	}
	// Exactly 72 bytes is hashed as is, and 73 is another password.
	h72, err := New(nil, Options{BcryptCost: 4}).hashPassword(base)
	if err != nil {
		t.Fatalf("hash: %v", err)
	}
	if !checkPassword(h72, base) || checkPassword(h72, base+"y") {
		t.Errorf("72-byte boundary: the 72-byte password must match and the 73-byte one not")
	}
	if checkPassword("", "") || checkPassword("", "anything") {
		t.Errorf("an empty hash matched")
	}

	forEachService(t, func(t *testing.T, s *Service, _ *clock) {
		ctx := context.Background()
		if _, err := s.CreateAccount(ctx, NewAccount{Localpart: "alice", Password: long1}); err != nil {
			t.Fatalf("create: %v", err)
		}
		if _, err := s.PasswordLogin(ctx, "alice", long1); err != nil {
			t.Fatalf("login with the long password: %v", err)
		}
		_, err := s.PasswordLogin(ctx, "alice", long2)
		wantCode(t, "login with a password sharing 72 bytes", err, "M_FORBIDDEN")
		if _, err := s.ChangePassword(ctx, "alice", long2, false, ""); err != nil {
			t.Fatalf("change password: %v", err)
		}
		_, err = s.PasswordLogin(ctx, "alice", long1)
		wantCode(t, "login with the old long password", err, "M_FORBIDDEN")
		if _, err := s.PasswordLogin(ctx, "alice", long2); err != nil {
			t.Fatalf("login with the new long password: %v", err)
		}
	})
}

func TestPasswordLoginResolution(t *testing.T) {
	forEachService(t, func(t *testing.T, s *Service, _ *clock) {
		ctx := context.Background()
		if _, err := s.CreateAccount(ctx, NewAccount{Localpart: "bob", Password: "pw"}); err != nil {
			t.Fatalf("create: %v", err)
		}
		for _, id := range []string{"bob", "BOB", "Bob", "@bob:hs1.test", "@BOB:hs1.test"} {
			u, err := s.PasswordLogin(ctx, id, "pw")
			if err != nil || u.Localpart != "bob" || u.UserID != "@bob:hs1.test" {
				t.Errorf("PasswordLogin(%q): %+v %v", id, u, err)
			}
		}
		for _, id := range []string{"@bob:other.test", "nobody", "@nobody:hs1.test"} {
			_, err := s.PasswordLogin(ctx, id, "pw")
			wantCode(t, "PasswordLogin("+id+")", err, "M_FORBIDDEN")
		}
		_, err := s.PasswordLogin(ctx, "bob", "PW")
		wantCode(t, "wrong password", err, "M_FORBIDDEN")

		if err := s.Deactivate(ctx, "bob", false); err != nil {
			t.Fatalf("deactivate: %v", err)
		}
		_, err = s.PasswordLogin(ctx, "bob", "pw")
		wantCode(t, "deactivated account", err, "M_USER_DEACTIVATED")
		wantCode(t, "CheckAvailable of a deactivated name", s.CheckAvailable(ctx, "bob"), "M_USER_IN_USE")
		_, err = s.CreateAccount(ctx, NewAccount{Localpart: "bob", Password: "pw"})
		wantCode(t, "reusing a deactivated name", err, "M_USER_IN_USE")
	})
}

func TestRefreshableTokenLifetime(t *testing.T) {
	forEachService(t, func(t *testing.T, s *Service, c *clock) {
		ctx := context.Background()
		if _, err := s.CreateAccount(ctx, NewAccount{Localpart: "alice", Password: "pw"}); err != nil {
			t.Fatalf("create: %v", err)
		}
		plain, err := s.StartSession(ctx, SessionRequest{Localpart: "alice"})
		if err != nil || plain.RefreshToken != "" || plain.ExpiresInMS != 0 {
			t.Fatalf("plain session: %+v %v", plain, err)
		}
		l, err := s.StartSession(ctx, SessionRequest{Localpart: "alice", DeviceID: "PHONE", Refresh: true})
		if err != nil || l.RefreshToken == "" || l.ExpiresInMS != (5*time.Minute).Milliseconds() || l.DeviceID != "PHONE" {
			t.Fatalf("refreshable session: %+v %v", l, err)
		}

		c.advance(5*time.Minute - time.Millisecond)
		if _, err := s.Authenticate(ctx, l.AccessToken, "", "", false); err != nil {
			t.Fatalf("token just before expiry: %v", err)
		}
		c.advance(time.Millisecond)
		_, err = s.Authenticate(ctx, l.AccessToken, "", "", false)
		if e := wantCode(t, "expired token", err, "M_UNKNOWN_TOKEN"); e.Extra["soft_logout"] != true {
			t.Fatalf("expired token: soft_logout %v, want true", e.Extra["soft_logout"])
		}
		// Logout accepts the expired token, as Synapse's does.
		if _, err := s.Authenticate(ctx, l.AccessToken, "", "", true); err != nil {
			t.Fatalf("expired token where expiry is allowed: %v", err)
		}
		// Tokens without a refresh token never expire.
		c.advance(365 * 24 * time.Hour)
		if _, err := s.Authenticate(ctx, plain.AccessToken, "", "", false); err != nil {
			t.Fatalf("non-refreshable token after a year: %v", err)
		}

		next, err := s.Refresh(ctx, l.RefreshToken)
		if err != nil || next.DeviceID != "PHONE" || next.UserID != "@alice:hs1.test" || next.ExpiresInMS != (5*time.Minute).Milliseconds() {
			t.Fatalf("refresh: %+v %v", next, err)
		}
		caller, err := s.Authenticate(ctx, next.AccessToken, "", "", false)
		if err != nil || caller.DeviceID != "PHONE" || caller.User.Localpart != "alice" {
			t.Fatalf("refreshed token: %+v %v", caller, err)
		}
		_, err = s.Refresh(ctx, l.RefreshToken)
		if e := wantCode(t, "spent refresh token", err, "M_UNKNOWN_TOKEN"); e.Extra["soft_logout"] != false {
			t.Fatalf("spent refresh token: soft_logout %v, want false", e.Extra["soft_logout"])
		}

		_, err = s.Authenticate(ctx, "myl_unknown", "", "", false)
		if e := wantCode(t, "unknown token", err, "M_UNKNOWN_TOKEN"); e.Extra["soft_logout"] != false {
			t.Fatalf("unknown token: soft_logout %v, want false", e.Extra["soft_logout"])
		}
	})
}

func TestLoginTokens(t *testing.T) {
	forEachService(t, func(t *testing.T, s *Service, c *clock) {
		ctx := context.Background()
		for _, lp := range []string{"alice", "bob"} {
			if _, err := s.CreateAccount(ctx, NewAccount{Localpart: lp, Password: "pw"}); err != nil {
				t.Fatalf("create: %v", err)
			}
		}
		tok, ms, err := s.CreateLoginToken(ctx, "alice")
		if err != nil || tok == "" || ms != (2*time.Minute).Milliseconds() {
			t.Fatalf("CreateLoginToken: %q %d %v", tok, ms, err)
		}
		u, err := s.TokenLogin(ctx, tok)
		if err != nil || u.Localpart != "alice" {
			t.Fatalf("TokenLogin: %+v %v", u, err)
		}
		_, err = s.TokenLogin(ctx, tok)
		wantCode(t, "second use", err, "M_FORBIDDEN")

		// Expiry is exact to the millisecond.
		tok, _, err = s.CreateLoginToken(ctx, "bob")
		if err != nil {
			t.Fatal(err)
		}
		c.advance(2 * time.Minute)
		if u, err := s.TokenLogin(ctx, tok); err != nil || u.Localpart != "bob" {
			t.Fatalf("token at its expiry instant: %+v %v", u, err)
		}
		tok, _, err = s.CreateLoginToken(ctx, "bob")
		if err != nil {
			t.Fatal(err)
		}
		c.advance(2*time.Minute + time.Millisecond)
		_, err = s.TokenLogin(ctx, tok)
		wantCode(t, "expired token", err, "M_FORBIDDEN")

		// Deactivation kills outstanding tokens.
		tok, _, err = s.CreateLoginToken(ctx, "bob")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Deactivate(ctx, "bob", true); err != nil {
			t.Fatal(err)
		}
		_, err = s.TokenLogin(ctx, tok)
		if e, ok := mxerr.As(err); !ok || e.Status != 403 {
			t.Fatalf("token of a deactivated account: %v, want 403", err)
		}
	})
}

// TestUpgradeGuest: a guest becomes a full account once; a second
// upgrade (or one of a full account) is refused with M_FORBIDDEN, not a
// storage error.
func TestUpgradeGuest(t *testing.T) {
	forEachService(t, func(t *testing.T, s *Service, _ *clock) {
		ctx := context.Background()
		guest, err := s.CreateAccount(ctx, NewAccount{Guest: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.UpgradeGuest(ctx, guest.Localpart, "pw"); err != nil {
			t.Fatalf("upgrade: %v", err)
		}
		if u, err := s.User(ctx, guest.Localpart); err != nil || u.IsGuest {
			t.Fatalf("after upgrade: %+v %v", u, err)
		}
		wantCode(t, "second upgrade", s.UpgradeGuest(ctx, guest.Localpart, "pw2"), "M_FORBIDDEN")
		wantCode(t, "unknown account", s.UpgradeGuest(ctx, "nobody", "pw"), "M_FORBIDDEN")
	})
}

// TestUser: an account comes back with its fields; a localpart without
// one is ErrNoSuchUser, an M_NOT_FOUND, never the store's error.
func TestUser(t *testing.T) {
	forEachService(t, func(t *testing.T, s *Service, _ *clock) {
		ctx := context.Background()
		if _, err := s.CreateAccount(ctx, NewAccount{Localpart: "alice", Password: "pw", Admin: true, UserType: "bot"}); err != nil {
			t.Fatal(err)
		}
		u, err := s.User(ctx, "alice")
		if err != nil || u.Localpart != "alice" || u.UserID != "@alice:hs1.test" || !u.IsAdmin || u.IsGuest ||
			u.UserType != "bot" || u.Deactivated || u.CreatedTS == 0 {
			t.Fatalf("User: %+v %v", u, err)
		}
		_, err = s.User(ctx, "nobody")
		if !errors.Is(err, ErrNoSuchUser) || errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown user: %v, want ErrNoSuchUser", err)
		}
		wantCode(t, "unknown user", err, "M_NOT_FOUND")
	})
}
