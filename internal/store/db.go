// Package store is Myelin's database: the only package that writes SQL.
//
// One schema and one set of queries serve SQLite (modernc.org/sqlite, the
// embedded default) and PostgreSQL (pgx). Queries are written once with
// PostgreSQL's $N placeholders; every difference between the two engines
// lives in dialect.go.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/myelin-chat/myelin/internal/ident"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	_ "modernc.org/sqlite"             // registers the "sqlite" driver
)

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("store: not found")

// ErrConflict is returned when an insert hits a unique constraint.
var ErrConflict = errors.New("store: already exists")

// DB is an open database. Reads go to a pool of connections; writes go to
// the writer, which for SQLite is a single connection so that writers queue
// in Go instead of failing with SQLITE_BUSY.
type DB struct {
	read    *sql.DB
	write   *sql.DB
	dialect dialect
	// checkpointer is SQLite's connection for WAL checkpoints (nil for
	// PostgreSQL).
	checkpointer *sql.DB
	// walPath is SQLite's write-ahead log file ("" for PostgreSQL).
	walPath string
	// restartedAt is the WAL's size when checkpoint last restarted it:
	// the file keeps that size until the writer's next commit cuts it
	// back, and a server gone idle must not be restarted again for it.
	restartedAt atomic.Int64
	// readStmts and writeStmts are nil for PostgreSQL.
	readStmts, writeStmts *stmtCache
	// completedUpTo bounds the positions of partial_state_completed
	// (see PartialStateCompleted).
	completedUpTo positionBound
	// log receives the migrations' progress (nil: slog's default, the
	// server's log).
	log *slog.Logger
}

func (db *DB) logger() *slog.Logger {
	if db.log == nil {
		return slog.Default()
	}
	return db.log
}

// Open connects to url (postgres://... or a SQLite file path) and runs the
// migrations that have not run yet.
func Open(ctx context.Context, url string, maxConns int, opts ...Option) (*DB, error) {
	db, err := open(url, maxConns, opts...)
	if err != nil {
		return nil, err
	}
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := db.adaptDialect(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// Option tunes how Open opens the database.
type Option func(*options)

type options struct {
	synchronous string
	cacheKiB    int
}

// CacheKiB sets SQLite's page cache per connection (cache_size) in KiB;
// 0 leaves SQLite's default (2,000 KiB). There are maxConns readers, a
// writer and a checkpointer, each with its own cache, allocated outside
// Go's heap; the operating system's file cache is behind them. The
// writer keeps at least writerCacheKiB. PostgreSQL ignores it.
func CacheKiB(kib int) Option {
	return func(o *options) { o.cacheKiB = kib }
}

// Synchronous sets SQLite's synchronous pragma: "full" (the default) or
// "normal". With FULL, the WAL is fsynced at every commit, so that an
// event answered 200 survives a power cut; NORMAL fsyncs only at
// checkpoints and may lose the last commits (never the database). The
// group commit makes one fsync serve many events, which is why FULL is
// the default (docs/benchmarks.md has the figures). PostgreSQL ignores
// it: there synchronous_commit is the server's setting.
func Synchronous(mode string) Option {
	return func(o *options) { o.synchronous = mode }
}

// SQLite WAL bounds. SQLite's own automatic checkpoint runs inside a
// commit and so is off (wal_autocheckpoint(0)); RunCheckpoints does it
// beside the writer. A PASSIVE checkpoint copies the WAL into the
// database but never shrinks the file, and the writer only starts the
// WAL over when no reader still uses it, which under steady /sync
// traffic is rare: the WAL grew to 1.6 GB in 24 s of sends. So:
const (
	// walTruncateAbove is the WAL size above which the checkpointer
	// asks for a RESTART checkpoint (waits for the readers of older
	// snapshots, so that the writer's next commit starts the file over
	// and cuts it back to journalSizeLimit). The WAL file so stays below
	// walTruncateAbove plus what is written between two looks (walPoll)
	// and while readers hold the restart up (truncateBackoff).
	walTruncateAbove = 16 << 20
	// journalSizeLimit is the size the writer cuts the WAL file back to
	// whenever it does start the WAL over (journal_size_limit).
	journalSizeLimit = 16 << 20
	// checkpointBusy is how long a RESTART checkpoint may wait for
	// readers; writers wait behind it meanwhile, so it is kept short and
	// retried at the next tick instead.
	checkpointBusy = 200 * time.Millisecond
	// truncateBackoff is how long RunCheckpoints waits before asking
	// for RESTART again after one found a reader in the way.
	truncateBackoff = 500 * time.Millisecond
	// walPoll is how often RunCheckpoints looks at the WAL's size.
	walPoll = 100 * time.Millisecond
	// writerCacheKiB is the least page cache the one writer connection
	// gets, SQLite's default: a group commit touches the last pages of
	// the events table, its indexes' pages for each room and sender, and
	// the push tables' pages for each recipient, and with the readers'
	// 256 KiB (64 pages) the writer read most of them back from the
	// file at every commit (docs/benchmarks.md, "Send path, fifth
	// pass"). One connection: 1.75 MiB more at most.
	writerCacheKiB = 2048
	// readerMaxIdle is how long a SQLite reader stays open unused.
	readerMaxIdle = 30 * time.Second
	// writerBusy is how long a connection waits for a lock otherwise.
	writerBusy = 10 * time.Second
)

func open(url string, maxConns int, opts ...Option) (*DB, error) {
	o := options{synchronous: "full"}
	for _, opt := range opts {
		opt(&o)
	}
	if IsPostgres(url) {
		pool, err := sql.Open("pgx", url)
		if err != nil {
			return nil, fmt.Errorf("store: open postgres: %w", err)
		}
		pool.SetMaxOpenConns(maxConns)
		pool.SetMaxIdleConns(maxConns)
		return &DB{read: pool, write: pool, dialect: postgres{}}, nil
	}
	var syncMode string
	switch strings.ToLower(o.synchronous) {
	case "", "full":
		syncMode = "FULL"
	case "normal":
		syncMode = "NORMAL"
	default:
		return nil, fmt.Errorf("store: sqlite synchronous: want full or normal, got %q", o.synchronous)
	}
	// A file: URL may carry a query of its own (dropped: the pragmas are
	// the server's); a plain path is taken as it is.
	path := SQLitePath(url)
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	// WAL lets readers run beside the writer; with synchronous=NORMAL a
	// crash loses at most the last transactions, never the database,
	// with FULL (the default) not even those. Write transactions start
	// IMMEDIATE so that a read inside one can never be upgraded into a
	// deadlock.
	// The path is a URI path: characters that would end it ('?' starts
	// the query, '#' a fragment) are escaped, or a data directory named
	// "a#b" would open the file "a".
	escaped := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	// temp_store=MEMORY keeps statement journals in memory: every
	// multi-row statement inside a transaction needs one, and on disk it
	// cost a temporary file's writes per statement.
	base := "file:" + escaped + "?_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=synchronous(" + syncMode + ")&_pragma=temp_store(MEMORY)" +
		fmt.Sprintf("&_pragma=journal_size_limit(%d)", journalSizeLimit)
	writeBase := base
	if o.cacheKiB > 0 {
		base += fmt.Sprintf("&_pragma=cache_size(-%d)", o.cacheKiB)
		writeBase += fmt.Sprintf("&_pragma=cache_size(-%d)", max(o.cacheKiB, writerCacheKiB))
	}
	busy := fmt.Sprintf("&_pragma=busy_timeout(%d)", writerBusy.Milliseconds())
	// The writer never checkpoints the WAL itself: SQLite would do it
	// inside a commit every 1,000 pages, with an fsync, holding the only
	// writer connection; RunCheckpoints does it beside the writer instead.
	write, err := sql.Open("sqlite", writeBase+busy+"&_txlock=immediate&_pragma=wal_autocheckpoint(0)")
	if err != nil {
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	read, err := sql.Open("sqlite", base+busy+"&_pragma=query_only(1)")
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}
	read.SetMaxOpenConns(maxConns)
	read.SetMaxIdleConns(maxConns)
	// Each reader holds its page cache, parsed schema and prepared
	// statements (a few MB, outside Go's heap): the ones a burst opened
	// close once it is over, and the server's memory goes back to what
	// it uses (issue 20).
	read.SetConnMaxIdleTime(readerMaxIdle)
	checkpointer, err := sql.Open("sqlite", base+busy)
	if err != nil {
		write.Close()
		read.Close()
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}
	checkpointer.SetMaxOpenConns(1)
	db := &DB{read: read, write: write, checkpointer: checkpointer, dialect: sqlite{}, walPath: path + "-wal",
		readStmts: newStmtCache(read), writeStmts: newStmtCache(write)}
	// Creating the file and switching to WAL needs the writer first.
	if err := write.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open sqlite %s: %w", path, err)
	}
	registerSQLite(db)
	return db, nil
}

// RunCheckpoints copies the SQLite write-ahead log into the database
// every interval until ctx ends, and sooner whenever the log has grown
// past walTruncateAbove (it is looked at every walPoll: under sustained
// sends it grows by tens of MiB a second). PostgreSQL needs none.
func (db *DB) RunCheckpoints(ctx context.Context, interval time.Duration) error {
	if db.dialect.name() != "sqlite" {
		return nil
	}
	poll := min(walPoll, interval)
	t := time.NewTicker(poll)
	defer t.Stop()
	last, busyUntil := time.Now(), time.Time{}
	var w walWatch
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			if now.Sub(last) < interval && (db.WALSize() <= walTruncateAbove || now.Before(busyUntil)) {
				continue
			}
			last = now
			// A failed checkpoint is retried at the next tick; one that
			// found a reader in the way (and held up the writer for
			// checkpointBusy) no sooner than truncateBackoff.
			if _, busy, _ := db.checkpointChanged(ctx, &w, now); busy {
				busyUntil = now.Add(truncateBackoff)
			}
		}
	}
}

// walQuietCheckpoint is how often a WAL that looks unchanged since a
// checkpoint copied all of it is checkpointed all the same: its file's
// modification time is the kernel's coarse clock, so a write landing
// within a few ms of the look, inside the file's size and with no
// restart of the log, would otherwise wait for the next write.
const walQuietCheckpoint = time.Minute

// walWatch is what RunCheckpoints knows of the WAL: its stamp when a
// checkpoint last copied every frame of it.
type walWatch struct {
	clean   walStamp
	cleanAt time.Time
}

// walStamp tells whether the WAL was written since it was taken: a write
// appends frames (the size grows, or the modification time moves when
// it reuses a file grown before) or starts the log over (its header's
// checkpoint sequence and salts change).
type walStamp struct {
	ok     bool
	size   int64
	mod    time.Time
	header [32]byte
}

func (db *DB) walStamp() walStamp {
	f, err := os.Open(db.walPath)
	if err != nil {
		return walStamp{}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return walStamp{}
	}
	st := walStamp{ok: true, size: fi.Size(), mod: fi.ModTime()}
	if _, err := f.ReadAt(st.header[:], 0); err != nil && fi.Size() >= int64(len(st.header)) {
		return walStamp{}
	}
	return st
}

// checkpointChanged is checkpoint unless nothing was written since one
// copied the whole WAL (and that was under walQuietCheckpoint ago). A
// checkpoint runs SQL, through SQLite's parser and virtual machine: once
// a second on a quiet server, it mapped back megabytes of the
// executable's code within a second of each quiet check's trim, and
// kept them counted in the process's RSS (issue 20, a minute after the
// load). It reports whether it ran.
func (db *DB) checkpointChanged(ctx context.Context, w *walWatch, now time.Time) (ran, busy bool, err error) {
	st := db.walStamp()
	if st.ok && st == w.clean && now.Sub(w.cleanAt) < walQuietCheckpoint {
		return false, false, nil
	}
	busy, all, err := db.checkpoint(ctx)
	w.clean, w.cleanAt = walStamp{}, time.Time{}
	// Taken before the checkpoint, the stamp misses nothing written
	// while it ran.
	if err == nil && all && !busy {
		w.clean, w.cleanAt = st, now
	}
	return true, busy, err
}

// checkpoint is one step of RunCheckpoints: a PASSIVE checkpoint on a
// connection of its own, which copies the WAL into the database without
// blocking readers or the writer; and when the WAL has grown past
// walTruncateAbove all the same, a RESTART checkpoint on the writer's
// connection, which then has only the last frames left to copy and
// makes the writer's next transaction start the file over. It must
// hold the writer: from a connection of its own it starved, since group
// commit takes the write lock again the moment it lets go. It waits at
// most checkpointBusy for readers of older snapshots (the store has no
// long read transactions: a snapshot lives for one query) and is
// otherwise retried at the next tick.
//
// RESTART, not TRUNCATE: emptying the file cost an ftruncate of 16 MiB
// (half of the checkpointer's CPU under sends, docs/benchmarks.md "Send
// path, fifth pass"), and every commit after it then appended to the
// file, allocating its blocks again. Restarted, the writer overwrites
// the file from its start, and journal_size_limit cuts it back to
// journalSizeLimit at that first commit.
// It reports busy when a RESTART checkpoint found a reader in the way,
// and all when the PASSIVE one copied every frame of the WAL.
func (db *DB) checkpoint(ctx context.Context) (busy, all bool, err error) {
	var log, copied int
	if err := db.checkpointer.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &log, &copied); err != nil {
		return false, false, err
	}
	all = !busy && log == copied
	size := db.WALSize()
	if size <= walTruncateAbove || size == db.restartedAt.Load() {
		return false, all, nil
	}
	c, err := db.write.Conn(ctx)
	if err != nil {
		return false, false, err
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout=%d", checkpointBusy.Milliseconds())); err != nil {
		return false, false, err
	}
	err = c.QueryRowContext(ctx, "PRAGMA wal_checkpoint(RESTART)").Scan(&busy, &log, &copied)
	_, rerr := c.ExecContext(context.WithoutCancel(ctx), fmt.Sprintf("PRAGMA busy_timeout=%d", writerBusy.Milliseconds()))
	if err == nil && !busy {
		db.restartedAt.Store(size)
	}
	return busy, all && err == nil && !busy, errors.Join(err, rerr)
}

// WALSize is the size of SQLite's write-ahead log file in bytes (0 for
// PostgreSQL, or when there is none).
func (db *DB) WALSize() int64 {
	if db.walPath == "" {
		return 0
	}
	fi, err := os.Stat(db.walPath)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// IsPostgres reports whether a database URL names PostgreSQL.
func IsPostgres(url string) bool {
	return strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://")
}

// Close releases every connection. For SQLite the writer and readers go
// first, then the checkpointer copies what is left of the WAL into the
// database and truncates it, so that a cleanly stopped server leaves no
// WAL behind to replay (SQLite would also do so when its last connection
// closes, but only if that connection can get the locks in time).
func (db *DB) Close() error {
	unregisterSQLite(db)
	for _, c := range []*stmtCache{db.readStmts, db.writeStmts} {
		if c != nil {
			c.close()
		}
	}
	err := db.write.Close()
	if db.read != db.write {
		err = errors.Join(err, db.read.Close())
	}
	if db.checkpointer != nil {
		// A reader still in a query holds it up checkpointBusy at most:
		// shutdown has seconds, not the usual lock wait.
		_, cerr := db.checkpointer.Exec(fmt.Sprintf("PRAGMA busy_timeout=%d", checkpointBusy.Milliseconds()))
		if cerr == nil {
			_, cerr = db.checkpointer.Exec("PRAGMA wal_checkpoint(TRUNCATE)")
		}
		err = errors.Join(err, cerr, db.checkpointer.Close())
	}
	return err
}

// Engine names the database engine ("sqlite" or "postgres").
func (db *DB) Engine() string { return db.dialect.name() }

// querier is what both *sql.DB and *sql.Tx offer; queries take one so that
// the same method body runs inside or outside a transaction.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// conn binds a querier to the dialect that rewrites its queries and, for
// SQLite, to the pool's prepared statements.
type conn struct {
	q  querier
	d  dialect
	st *stmtCache // nil: run queries unprepared
	tx *sql.Tx    // set inside a transaction
}

// stmt returns the prepared form of a (rewritten) query, or nil to run
// it unprepared.
func (c conn) stmt(ctx context.Context, q string) *sql.Stmt {
	if c.st == nil {
		return nil
	}
	if c.tx == nil {
		return c.st.prepare(ctx, q)
	}
	if s := c.st.get(q); s != nil {
		return c.tx.StmtContext(ctx, s)
	}
	// Preparing now would wait for the connection this transaction holds
	// (SQLite has one writer connection): prepare it after the commit.
	c.st.later(q)
	return nil
}

// checkArgs refuses, on every engine, string arguments that PostgreSQL
// cannot take (NUL, invalid UTF-8): SQLite would store or look them up
// where PostgreSQL fails, and the two must answer alike. Callers refuse
// such strings earlier with a precise error; this is the backstop.
func checkArgs(args []any) error {
	for i, a := range args {
		var err error
		switch v := a.(type) {
		case string:
			err = ident.CheckText(v)
		case *string:
			if v != nil {
				err = ident.CheckText(*v)
			}
		case sql.NullString:
			err = ident.CheckText(v.String)
		case []string:
			for _, s := range v {
				if err = ident.CheckText(s); err != nil {
					break
				}
			}
		}
		if err != nil {
			return fmt.Errorf("store: argument %d: %w", i+1, err)
		}
	}
	return nil
}

func (c conn) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if err := checkArgs(args); err != nil {
		return nil, err
	}
	q := c.d.rewrite(query)
	if s := c.stmt(ctx, q); s != nil {
		res, err := s.ExecContext(ctx, args...)
		return res, c.d.mapError(err)
	}
	res, err := c.q.ExecContext(ctx, q, args...)
	return res, c.d.mapError(err)
}

func (c conn) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if err := checkArgs(args); err != nil {
		return nil, err
	}
	q := c.d.rewrite(query)
	if s := c.stmt(ctx, q); s != nil {
		rows, err := s.QueryContext(ctx, args...)
		return rows, c.d.mapError(err)
	}
	rows, err := c.q.QueryContext(ctx, q, args...)
	return rows, c.d.mapError(err)
}

// queryRow scans one row into dest, returning ErrNotFound for no rows.
func (c conn) queryRow(ctx context.Context, query string, args []any, dest ...any) error {
	if err := checkArgs(args); err != nil {
		return err
	}
	q := c.d.rewrite(query)
	var row *sql.Row
	if s := c.stmt(ctx, q); s != nil {
		row = s.QueryRowContext(ctx, args...)
	} else {
		row = c.q.QueryRowContext(ctx, q, args...)
	}
	err := row.Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return c.d.mapError(err)
}

// stmtCache keeps one prepared statement per query for a pool. SQLite
// compiles every unprepared query anew, which profiles showed to be a
// third of /sync's CPU; pgx already caches statements per connection, so
// PostgreSQL pools go without. The query texts are the store's own, with
// IN lists padded to powers of two (inArgs), so they are few; should they
// ever pass maxStmts anyway, the rest run unprepared rather than grow the
// cache (evicting instead would close statements other queries may be
// about to use).
type stmtCache struct {
	pool    *sql.DB
	mu      sync.Mutex
	stmts   map[string]*sql.Stmt
	pending map[string]bool
	// retired are the statements the last release dropped, at
	// retiredAt; the next release at least stmtRetireAfter later closes
	// them.
	retired   []*sql.Stmt
	retiredAt time.Time
}

// stmtRetireAfter is how long a dropped statement stays open: a query
// may have taken it from the cache just before the release, and closing
// it before that query starts would fail the query. A query starts
// within microseconds of taking its statement.
const stmtRetireAfter = 5 * time.Second

func newStmtCache(pool *sql.DB) *stmtCache {
	return &stmtCache{pool: pool, stmts: map[string]*sql.Stmt{}, pending: map[string]bool{}}
}

func (c *stmtCache) get(q string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stmts[q]
}

// prepare returns the statement for q, preparing it on first use; nil if
// it cannot be prepared (the caller then runs q unprepared and gets the
// real error).
func (c *stmtCache) prepare(ctx context.Context, q string) *sql.Stmt {
	if s := c.get(q); s != nil || c.full() {
		return s
	}
	s, err := c.pool.PrepareContext(ctx, q)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.stmts[q]; ok {
		s.Close()
		return old
	}
	if len(c.stmts) >= maxStmts {
		s.Close()
		return nil
	}
	c.stmts[q] = s
	return s
}

// maxStmts bounds a stmtCache.
const maxStmts = 1024

func (c *stmtCache) full() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.stmts) >= maxStmts
}

func (c *stmtCache) later(q string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.stmts)+len(c.pending) < maxStmts {
		c.pending[q] = true
	}
}

// flush prepares the queries first seen inside a transaction.
func (c *stmtCache) flush(ctx context.Context) {
	c.mu.Lock()
	qs := make([]string, 0, len(c.pending))
	for q := range c.pending {
		qs = append(qs, q)
	}
	clear(c.pending)
	c.mu.Unlock()
	for _, q := range qs {
		c.prepare(ctx, q)
	}
}

// release drops the prepared statements, which hold memory in SQLite on
// every connection that ran them (the writer's are never let go of
// otherwise); they are prepared again as queries come. The ones the
// previous release dropped are closed, if it was stmtRetireAfter ago.
func (c *stmtCache) release(now time.Time) {
	c.mu.Lock()
	var closing []*sql.Stmt
	if len(c.retired) > 0 && now.Sub(c.retiredAt) >= stmtRetireAfter {
		closing, c.retired = c.retired, nil
	}
	if len(c.retired) == 0 && len(c.stmts) > 0 {
		c.retired = make([]*sql.Stmt, 0, len(c.stmts))
		for _, s := range c.stmts {
			c.retired = append(c.retired, s)
		}
		c.retiredAt = now
		c.stmts = map[string]*sql.Stmt{}
	}
	c.mu.Unlock()
	for _, s := range closing {
		s.Close()
	}
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.stmts {
		s.Close()
	}
	clear(c.stmts)
	for _, s := range c.retired {
		s.Close()
	}
	c.retired = nil
}

// collect runs a query and turns every row into a T with scan. The
// result is never nil, so that empty lists render as [] in JSON.
func collect[T any](ctx context.Context, c conn, scan func(scan func(...any) error) (T, error), query string, args ...any) ([]T, error) {
	rows, err := c.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows.Scan)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// one scans a single column.
func one[T any](scan func(...any) error) (T, error) {
	var v T
	err := scan(&v)
	return v, err
}

// strings runs a query whose rows are one text column.
func (c conn) strings(ctx context.Context, query string, args ...any) ([]string, error) {
	return collect(ctx, c, one[string], query, args...)
}

func (db *DB) r() conn { return conn{q: db.read, d: db.dialect, st: db.readStmts} }
func (db *DB) w() conn { return conn{q: db.write, d: db.dialect, st: db.writeStmts} }

// tx runs fn in one write transaction, committing if fn returns nil.
func (db *DB) tx(ctx context.Context, fn func(c conn) error) error {
	t, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	if err := fn(conn{q: t, d: db.dialect, st: db.writeStmts, tx: t}); err != nil {
		_ = t.Rollback()
		return err
	}
	if err := t.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", db.dialect.mapError(err))
	}
	if db.writeStmts != nil {
		db.writeStmts.flush(ctx)
	}
	return nil
}

// affected turns "no row changed" into ErrNotFound.
func affected(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}
