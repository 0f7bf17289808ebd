package store

import (
	"context"
	"database/sql"
	"sync"
	"time"
)

// The writer and the checkpointer never close: the page cache a burst
// filled (up to cache_size each), which the database file's pages in
// the operating system's cache duplicate, stays in them for the
// process's life unless SQLite is asked to let go of it (PRAGMA
// shrink_memory, sqlite3_db_release_memory). The readers are not asked:
// using one would restart its idle time (readerMaxIdle), and a reader
// that closes gives back its cache, schema and statements together.

// shrinkWait bounds how long a release waits for the writer: a server
// that went quiet has none in a transaction, and if it has, its cache is
// in use.
const shrinkWait = 50 * time.Millisecond

// openSQLite is the process's open SQLite databases: the memory their
// connections hold is released with libc's allocator's, which is the
// process's too.
var openSQLite struct {
	mu  sync.Mutex
	dbs map[*DB]struct{}
}

func registerSQLite(db *DB) {
	openSQLite.mu.Lock()
	defer openSQLite.mu.Unlock()
	if openSQLite.dbs == nil {
		openSQLite.dbs = map[*DB]struct{}{}
	}
	openSQLite.dbs[db] = struct{}{}
}

func unregisterSQLite(db *DB) {
	openSQLite.mu.Lock()
	defer openSQLite.mu.Unlock()
	delete(openSQLite.dbs, db)
}

// ReleaseSQLiteMemory returns the memory SQLite holds and does not use
// to the operating system: every open database's prepared statements
// (closed at the next call, see stmtCache.release), the page caches of
// its writer and checkpointer, then the regions libc's allocator kept of
// what SQLite freed (trimLibc; closed readers' caches, schemas and
// statements). The server calls it when it is quiet.
func ReleaseSQLiteMemory() {
	openSQLite.mu.Lock()
	dbs := make([]*DB, 0, len(openSQLite.dbs))
	for db := range openSQLite.dbs {
		dbs = append(dbs, db)
	}
	openSQLite.mu.Unlock()
	now := time.Now()
	for _, db := range dbs {
		db.readStmts.release(now)
		db.writeStmts.release(now)
		db.shrinkMemory()
	}
	trimLibc()
}

// shrinkMemory frees the unused pages of the writer's and the
// checkpointer's page caches. A connection busy for longer than
// shrinkWait is left as it is.
func (db *DB) shrinkMemory() {
	ctx, cancel := context.WithTimeout(context.Background(), shrinkWait)
	defer cancel()
	for _, pool := range []*sql.DB{db.write, db.checkpointer} {
		if pool != nil {
			_, _ = pool.ExecContext(ctx, "PRAGMA shrink_memory")
		}
	}
}
