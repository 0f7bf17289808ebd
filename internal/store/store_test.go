package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
	// Databases copied from one migrated once, not migrated per test;
	// the tests of the migrations themselves take empty ones.
	_ "github.com/myelin-chat/myelin/internal/testdb/migrated"
)

func open(t *testing.T, url string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), url, 4)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestMigrationsAreIdempotent(t *testing.T) {
	testdb.ForEachEmpty(t, func(t *testing.T, url string) {
		open(t, url).Close()
		db := open(t, url) // second start: nothing left to run, nothing fails
		if _, err := db.CountUsers(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

func TestUsersDevicesAndTokens(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db := open(t, url)
		u := store.User{Localpart: "alice", UserID: "@alice:test", PasswordHash: "h", CreatedTS: 1}
		if err := db.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		if err := db.CreateUser(ctx, u); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate user: got %v, want ErrConflict", err)
		}
		name := "phone"
		if err := db.CreateSession(ctx, store.NewSession{Localpart: "alice", DeviceID: "D1", DisplayName: &name, AccessHash: "a1", NowTS: 5}); err != nil {
			t.Fatal(err)
		}
		owner, err := db.LookupAccessToken(ctx, "a1")
		if err != nil || owner.User.UserID != "@alice:test" || owner.DeviceID != "D1" {
			t.Fatalf("lookup: %+v %v", owner, err)
		}
		// Logging in again on the same device revokes its earlier token.
		if err := db.CreateSession(ctx, store.NewSession{Localpart: "alice", DeviceID: "D1", AccessHash: "a2", NowTS: 6}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.LookupAccessToken(ctx, "a1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("old token after re-login: %v", err)
		}
		d, err := db.GetDevice(ctx, "alice", "D1")
		if err != nil || d.DisplayName == nil || *d.DisplayName != "phone" {
			t.Fatalf("device kept its name: %+v %v", d, err)
		}
		if err := db.DeleteDevices(ctx, "alice", []string{"D1"}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.LookupAccessToken(ctx, "a2"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("token of deleted device: %v", err)
		}
	})
}

func TestRefreshRotation(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db := open(t, url)
		if err := db.CreateUser(ctx, store.User{Localpart: "bob", UserID: "@bob:test", CreatedTS: 1}); err != nil {
			t.Fatal(err)
		}
		if err := db.CreateSession(ctx, store.NewSession{Localpart: "bob", DeviceID: "D", AccessHash: "a0", RefreshHash: "r0", ExpiresTS: 10}); err != nil {
			t.Fatal(err)
		}
		s, err := db.Refresh(ctx, "r0", store.NewSession{AccessHash: "a1", RefreshHash: "r1", ExpiresTS: 20})
		if err != nil || s.Localpart != "bob" || s.DeviceID != "D" {
			t.Fatalf("refresh: %+v %v", s, err)
		}
		// The lost-response retry: r0 still works and replaces the unused pair.
		if _, err := db.Refresh(ctx, "r0", store.NewSession{AccessHash: "a2", RefreshHash: "r2", ExpiresTS: 20}); err != nil {
			t.Fatalf("retry: %v", err)
		}
		if _, err := db.LookupAccessToken(ctx, "a1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("replaced pair still valid: %v", err)
		}
		// Using the new access token retires r0.
		if err := db.MarkAccessTokenUsed(ctx, "a2", "r2"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Refresh(ctx, "r0", store.NewSession{AccessHash: "a3", RefreshHash: "r3"}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("old refresh token after use of the new pair: %v", err)
		}
	})
}

func TestRegistrationTokenLimits(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db := open(t, url)
		one := int64(1)
		if err := db.CreateRegistrationToken(ctx, store.RegistrationToken{Token: "abc", UsesAllowed: &one}); err != nil {
			t.Fatal(err)
		}
		if err := db.ReserveRegistrationToken(ctx, "abc", 0); err != nil {
			t.Fatal(err)
		}
		if err := db.ReserveRegistrationToken(ctx, "abc", 0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second reservation of a one-use token: %v", err)
		}
		if err := db.ReleaseRegistrationToken(ctx, "abc"); err != nil {
			t.Fatal(err)
		}
		if err := db.ReserveRegistrationToken(ctx, "abc", 0); err != nil {
			t.Fatalf("reserve after release: %v", err)
		}
		if err := db.CompleteRegistrationToken(ctx, "abc"); err != nil {
			t.Fatal(err)
		}
		tok, err := db.GetRegistrationToken(ctx, "abc")
		if err != nil || tok.Completed != 1 || tok.Pending != 0 || tok.Valid(0) {
			t.Fatalf("after completion: %+v %v", tok, err)
		}
	})
}

func TestProfileFields(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db := open(t, url)
		if err := db.CreateUser(ctx, store.User{Localpart: "c", UserID: "@c:test"}); err != nil {
			t.Fatal(err)
		}
		if err := db.SetProfileField(ctx, "c", "displayname", json.RawMessage(`"Cee"`)); err != nil {
			t.Fatal(err)
		}
		if err := db.SetProfileField(ctx, "c", "displayname", json.RawMessage(`"Sea"`)); err != nil {
			t.Fatal(err)
		}
		p, err := db.Profile(ctx, "c")
		if err != nil || string(p["displayname"]) != `"Sea"` {
			t.Fatalf("profile: %s %v", p, err)
		}
		if err := db.DeactivateUser(ctx, "c", true); err != nil {
			t.Fatal(err)
		}
		if p, _ := db.Profile(ctx, "c"); len(p) != 0 {
			t.Fatalf("erased profile still has %v", p)
		}
	})
}
