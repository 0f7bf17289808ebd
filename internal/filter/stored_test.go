package filter_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/myelin-chat/myelin/internal/filter"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
)

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if e, ok := mxerr.As(err); !ok || e.Code != code {
		t.Fatalf("%s: got %v, want %s", what, err, code)
	}
}

// TestStoredFilters: a filter is checked (size, syntax) before it is
// stored, is the uploader's only, and /sync's parameter names one by ID
// or carries one inline.
func TestStoredFilters(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		db, err := store.Open(ctx, dbURL, 4)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		s := filter.NewService(db, 100)

		_, err = s.Create(ctx, "alice", json.RawMessage(`{"room":{"timeline":{"limit":"x"}}}`))
		if _, ok := mxerr.As(err); !ok {
			t.Fatalf("bad filter: %v", err)
		}
		_, err = s.Create(ctx, "alice", json.RawMessage(`{"event_fields":["`+strings.Repeat("a", 100)+`"]}`))
		wantCode(t, "large filter", err, "M_TOO_LARGE")
		raw := json.RawMessage(`{"room":{"timeline":{"limit":3}}}`)
		id, err := s.Create(ctx, "alice", raw)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := s.Get(ctx, "alice", id); err != nil || string(got) != string(raw) {
			t.Fatalf("get: %s %v", got, err)
		}
		_, err = s.Get(ctx, "bob", id)
		wantCode(t, "another user's filter", err, "M_NOT_FOUND")

		f, err := s.Resolve(ctx, "alice", "")
		if err != nil || f == nil {
			t.Fatalf("no filter: %v %v", f, err)
		}
		for _, param := range []string{strings.TrimSpace(string(raw)), itoa(id)} {
			f, err := s.Resolve(ctx, "alice", param)
			if err != nil || f.Room.Timeline.LimitOr(10, 100) != 3 {
				t.Fatalf("resolve %q: %+v %v", param, f, err)
			}
		}
		_, err = s.Resolve(ctx, "alice", "x")
		wantCode(t, "not an ID", err, "M_INVALID_PARAM")
		_, err = s.Resolve(ctx, "bob", itoa(id))
		wantCode(t, "another user's ID", err, "M_NOT_FOUND")
		_, err = s.Resolve(ctx, "alice", `{"event_fields":["`+strings.Repeat("a", 100)+`"]}`)
		wantCode(t, "large inline filter", err, "M_TOO_LARGE")
	})
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }
