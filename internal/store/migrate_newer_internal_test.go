package store

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/myelin-chat/myelin/internal/testdb"
)

// A database that a newer binary migrated must not be opened by an older
// one, whose queries would misread the newer schema; one this binary
// migrated itself opens again as before.
func TestOpenRefusesNewerSchema(t *testing.T) {
	testdb.ForEachEmpty(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db, err := Open(ctx, url, 2)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.w().exec(ctx, `INSERT INTO schema_migrations (version, name, applied_ts) VALUES ($1, $2, $3)`,
			99990, "99990_from_the_future.sql", int64(1)); err != nil {
			t.Fatal(err)
		}
		db.Close()

		_, err = Open(ctx, url, 2)
		if !errors.Is(err, ErrSchemaTooNew) {
			t.Fatalf("open after a newer migration: %v, want ErrSchemaTooNew", err)
		}
		if !strings.Contains(err.Error(), "99990_from_the_future.sql") {
			t.Fatalf("error does not name the unknown migration: %v", err)
		}

		// A version this binary does not ship, below its highest (the
		// numbering has gaps; 0 is never used), is a newer migration too.
		gap := 0
		raw, err := open(url, 2)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := raw.w().exec(ctx, `DELETE FROM schema_migrations WHERE version = $1`, 99990); err != nil {
			t.Fatal(err)
		}
		if _, err := raw.w().exec(ctx, `INSERT INTO schema_migrations (version, name, applied_ts) VALUES ($1, $2, $3)`,
			gap, "gap.sql", int64(1)); err != nil {
			t.Fatal(err)
		}
		raw.Close()
		if _, err := Open(ctx, url, 2); !errors.Is(err, ErrSchemaTooNew) {
			t.Fatalf("open with an unknown version in a gap: %v, want ErrSchemaTooNew", err)
		}
	})
}
