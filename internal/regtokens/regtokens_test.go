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
