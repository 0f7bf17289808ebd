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
	"os"
	"path/filepath"
	"strings"

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
}

// Open connects to url (postgres://... or a SQLite file path) and runs the
// migrations that have not run yet.
func Open(ctx context.Context, url string, maxConns int) (*DB, error) {
	db, err := open(url, maxConns)
	if err != nil {
		return nil, err
	}
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func open(url string, maxConns int) (*DB, error) {
	if IsPostgres(url) {
		pool, err := sql.Open("pgx", url)
		if err != nil {
			return nil, fmt.Errorf("store: open postgres: %w", err)
		}
		pool.SetMaxOpenConns(maxConns)
		pool.SetMaxIdleConns(maxConns)
		return &DB{read: pool, write: pool, dialect: postgres{}}, nil
	}
	path := strings.TrimPrefix(url, "file:")
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	// WAL lets readers run beside the writer; synchronous=NORMAL is safe
	// with WAL (a crash loses at most the last transactions, never the
	// database). Write transactions start IMMEDIATE so that a read inside
	// one can never be upgraded into a deadlock.
	base := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)"
	write, err := sql.Open("sqlite", base+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	read, err := sql.Open("sqlite", base+"&_pragma=query_only(1)")
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}
	read.SetMaxOpenConns(maxConns)
	read.SetMaxIdleConns(maxConns)
	db := &DB{read: read, write: write, dialect: sqlite{}}
	// Creating the file and switching to WAL needs the writer first.
	if err := write.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open sqlite %s: %w", path, err)
	}
	return db, nil
}

// IsPostgres reports whether a database URL names PostgreSQL.
func IsPostgres(url string) bool {
	return strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://")
}

// Close releases every connection.
func (db *DB) Close() error {
	err := db.write.Close()
	if db.read != db.write {
		err = errors.Join(err, db.read.Close())
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

// conn binds a querier to the dialect that rewrites its queries.
type conn struct {
	q querier
	d dialect
}

func (c conn) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	res, err := c.q.ExecContext(ctx, c.d.rewrite(query), args...)
	return res, c.d.mapError(err)
}

func (c conn) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	rows, err := c.q.QueryContext(ctx, c.d.rewrite(query), args...)
	return rows, c.d.mapError(err)
}

// queryRow scans one row into dest, returning ErrNotFound for no rows.
func (c conn) queryRow(ctx context.Context, query string, args []any, dest ...any) error {
	err := c.q.QueryRowContext(ctx, c.d.rewrite(query), args...).Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return c.d.mapError(err)
}

// strings runs a query whose rows are one text column.
func (c conn) strings(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := c.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

func (db *DB) r() conn { return conn{db.read, db.dialect} }
func (db *DB) w() conn { return conn{db.write, db.dialect} }

// tx runs fn in one write transaction, committing if fn returns nil.
func (db *DB) tx(ctx context.Context, fn func(c conn) error) error {
	t, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	if err := fn(conn{t, db.dialect}); err != nil {
		_ = t.Rollback()
		return err
	}
	if err := t.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", db.dialect.mapError(err))
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
