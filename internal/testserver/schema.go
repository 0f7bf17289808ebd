package testserver

import (
	"context"

	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// Every test server migrates its database on start: the databases
// testdb hands out in a test binary that links this package are copies
// of one migrated once (see testdb.SetSchema), and the start's migration
// finds nothing left to do. On PostgreSQL that saves about a second per
// server; a package of end-to-end tests starts hundreds.
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
