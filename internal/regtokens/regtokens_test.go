package regtokens_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/regtokens"
	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
)

func isUnauthorized(err error) bool {
	var me *mxerr.Error
	return errors.As(err, &me) && me.Code == "M_UNAUTHORIZED"
}

// TestReserveCompleteRelease follows a one-use token through a
// registration: valid, reserved (so no longer valid and not reservable
// again), released when the session expires, reserved and completed.
func TestReserveCompleteRelease(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		db, err := store.Open(ctx, dbURL, 4)
		if err != nil {
			t.Fatalf("store: %v", err)
		}
		t.Cleanup(func() { db.Close() })
		s := regtokens.New(db)
		one := int64(1)
		past := time.Now().Add(-time.Minute).UnixMilli()
		for _, tok := range []store.RegistrationToken{{Token: "once", UsesAllowed: &one}, {Token: "old", ExpiryTime: &past}} {
			if err := db.CreateRegistrationToken(ctx, tok); err != nil {
				t.Fatalf("create %s: %v", tok.Token, err)
			}
		}

		for tok, want := range map[string]bool{"once": true, "old": false, "unknown": false, "bad token!": false} {
			if got, err := s.Valid(ctx, tok); err != nil || got != want {
				t.Errorf("Valid(%q) = %v, %v; want %v", tok, got, err, want)
			}
		}
		for _, tok := range []string{"old", "unknown", "bad token!", ""} {
			if err := s.Reserve(ctx, tok); !isUnauthorized(err) {
				t.Errorf("Reserve(%q) = %v; want M_UNAUTHORIZED", tok, err)
			}
		}

		if err := s.Reserve(ctx, "once"); err != nil {
			t.Fatalf("reserve: %v", err)
		}
		if ok, _ := s.Valid(ctx, "once"); ok {
			t.Fatal("a reserved one-use token is still valid")
		}
		if err := s.Reserve(ctx, "once"); !isUnauthorized(err) {
			t.Fatalf("second reservation: %v", err)
		}

		data := map[string]json.RawMessage{regtokens.SessionKey: json.RawMessage(`"once"`)}
		if got := regtokens.SessionToken(data); got != "once" {
			t.Fatalf("SessionToken = %q", got)
		}
		s.ReleaseExpired(ctx, data)
		if ok, _ := s.Valid(ctx, "once"); !ok {
			t.Fatal("released token not valid again")
		}
		if err := s.Reserve(ctx, "once"); err != nil {
			t.Fatalf("reserve after release: %v", err)
		}
		if err := s.Complete(ctx, "once"); err != nil {
			t.Fatalf("complete: %v", err)
		}
		got, err := db.GetRegistrationToken(ctx, "once")
		if err != nil || got.Pending != 0 || got.Completed != 1 {
			t.Fatalf("after completion: %+v %v", got, err)
		}
		if ok, _ := s.Valid(ctx, "once"); ok {
			t.Fatal("used-up token still valid")
		}
		// Nothing to release for a session without a token.
		s.ReleaseExpired(ctx, map[string]json.RawMessage{})
	})
}

// TestAdminTokens: the admin API's create, list, get, update and delete,
// with the same syntax rule as the registration stage.
func TestAdminTokens(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		db, err := store.Open(ctx, dbURL, 4)
		if err != nil {
			t.Fatalf("store: %v", err)
		}
		t.Cleanup(func() { db.Close() })
		s := regtokens.New(db)
		code := func(what string, err error, want string) {
			t.Helper()
			if e, ok := mxerr.As(err); !ok || e.Code != want {
				t.Fatalf("%s: %v, want %s", what, err, want)
			}
		}
		name, bad, neg, length, long := "mine", "bad token!", int64(-1), 8, 65
		past := time.Now().Add(-time.Hour).UnixMilli()
		_, err = s.Create(ctx, regtokens.NewToken{Token: &bad})
		code("bad syntax", err, "M_INVALID_PARAM")
		_, err = s.Create(ctx, regtokens.NewToken{UsesAllowed: &neg})
		code("negative uses", err, "M_INVALID_PARAM")
		_, err = s.Create(ctx, regtokens.NewToken{ExpiryTime: &past})
		code("past expiry", err, "M_INVALID_PARAM")
		_, err = s.Create(ctx, regtokens.NewToken{Length: &long})
		code("too long", err, "M_INVALID_PARAM")
		if _, err := s.Create(ctx, regtokens.NewToken{Token: &name}); err != nil {
			t.Fatal(err)
		}
		_, err = s.Create(ctx, regtokens.NewToken{Token: &name})
		code("duplicate", err, "M_INVALID_PARAM")
		random, err := s.Create(ctx, regtokens.NewToken{Length: &length})
		if err != nil || len(random.Token) != 8 || !regtokens.ValidSyntax(random.Token) {
			t.Fatalf("random token %q %v", random.Token, err)
		}

		zero := int64(0)
		up, err := s.Update(ctx, name, func(tok *regtokens.Token) error { tok.UsesAllowed = &zero; return nil })
		if err != nil || up.UsesAllowed == nil || *up.UsesAllowed != 0 {
			t.Fatalf("update: %+v %v", up, err)
		}
		_, err = s.Update(ctx, "none", func(*regtokens.Token) error { return nil })
		code("update unknown", err, "M_NOT_FOUND")
		// A token deleted between Update's read and its write is not
		// found either, not a storage error.
		gone := "gone"
		if _, err := s.Create(ctx, regtokens.NewToken{Token: &gone}); err != nil {
			t.Fatal(err)
		}
		_, err = s.Update(ctx, gone, func(*regtokens.Token) error { return s.Delete(ctx, gone) })
		code("update of a token deleted meanwhile", err, "M_NOT_FOUND")
		valid, invalid := true, false
		for want, filter := range map[string]*bool{random.Token: &valid, name: &invalid} {
			list, err := s.List(ctx, filter)
			if err != nil || len(list) != 1 || list[0].Token != want {
				t.Fatalf("list valid=%v: %+v %v", *filter, list, err)
			}
		}
		if all, err := s.List(ctx, nil); err != nil || len(all) != 2 {
			t.Fatalf("list all: %+v %v", all, err)
		}
		if err := s.Delete(ctx, name); err != nil {
			t.Fatal(err)
		}
		code("delete twice", s.Delete(ctx, name), "M_NOT_FOUND")
		_, err = s.Get(ctx, name)
		code("get deleted", err, "M_NOT_FOUND")
	})
}
