// Package migrated, imported by a test binary (for its side effect),
// makes the databases testdb hands out there copies of one migrated
// once to the current schema (see testdb.SetSchema) instead of empty
// ones, which the test's store.Open (or server start) then finds with
// nothing left to do. On PostgreSQL a fresh database, migrated and
// dropped, cost 3-6 s per test on a loaded machine, a reused copy a
// tenth of that: docs/benchmarks.md "Test suite time", "Test suite
// time, stop 28". The store's own tests, which test the migrations,
// must not import it.
package migrated

import (
	"context"

	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
)

func init() { testdb.SetSchema(migrate) }

// migrate brings the database at url to the current schema, as a
// server's start would.
func migrate(ctx context.Context, url string) error {
	db, err := store.Open(ctx, url, 1)
	if err != nil {
		return err
	}
	return db.Close()
}
