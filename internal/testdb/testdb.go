// Package testdb gives tests fresh databases: SQLite always, and
// PostgreSQL whenever MYELIN_TEST_POSTGRES holds a connection URL (a new
// database per test, dropped when the test ends).
//
// A test binary that sets a schema (SetSchema; package migrated does,
// and testserver, roomtest and the store's and engine's tests import it)
// gets databases that are copies of one prepared per engine per
// process, instead of empty ones: migrating a fresh PostgreSQL database
// took about a second, and the end-to-end packages start hundreds of
// servers. PostgreSQL ones are also reused (see postgres.go).
package testdb

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// PostgresEnv names the variable that enables PostgreSQL tests.
const PostgresEnv = "MYELIN_TEST_POSTGRES"

// Engines lists the engines this run covers.
func Engines() []string {
	if os.Getenv(PostgresEnv) != "" {
		return []string{"sqlite", "postgres"}
	}
	return []string{"sqlite"}
}

// ForEach runs fn as a subtest per engine, each with a fresh database URL.
func ForEach(t *testing.T, fn func(t *testing.T, dbURL string)) {
	for _, engine := range Engines() {
		t.Run(engine, func(t *testing.T) { fn(t, NewURL(t, engine)) })
	}
}

// ForEachEmpty is ForEach with empty databases (NewEmptyURL).
func ForEachEmpty(t *testing.T, fn func(t *testing.T, dbURL string)) {
	for _, engine := range Engines() {
		t.Run(engine, func(t *testing.T) { fn(t, NewEmptyURL(t, engine)) })
	}
}

// schema is the registered preparation (see SetSchema) and its
// prepared copies, one per engine, made on first use.
var schema struct {
	mu      sync.Mutex
	prepare func(ctx context.Context, url string) error
	// sqlite is the prepared database file's contents.
	sqlite []byte
	// postgres is the prepared PostgreSQL database and the pool of
	// copies of it.
	postgres *pgTemplate
	// err is a failed preparation's error, kept so that every test
	// reports it instead of preparing again.
	err map[string]error
}

// SetSchema makes NewURL (and ForEach) hand out databases that prepare
// has been run on, such as the migrated schema of a server that would
// migrate them on start anyway: prepare runs once per engine per test
// process, on a database of its own, and every later database is a copy
// of it (a file copy for SQLite, CREATE DATABASE ... TEMPLATE for
// PostgreSQL). A copy is what a fresh database would be after prepare,
// so tests see no difference but time. Call it from an init function;
// tests of the preparation itself (the store's migrations) take empty
// databases (ForEachEmpty, NewEmptyURL).
func SetSchema(prepare func(ctx context.Context, url string) error) {
	schema.mu.Lock()
	defer schema.mu.Unlock()
	schema.prepare = prepare
}

// NewURL creates a database of the engine and returns its URL: empty, or
// prepared if a schema is set (SetSchema).
func NewURL(t testing.TB, engine string) string {
	t.Helper()
	schema.mu.Lock()
	prepared := schema.prepare != nil
	schema.mu.Unlock()
	return newURL(t, engine, prepared)
}

// NewEmptyURL creates an empty database of the engine, whether or not a
// schema is set, and returns its URL: for the tests of the preparation
// itself in a binary whose other tests take prepared copies.
func NewEmptyURL(t testing.TB, engine string) string {
	t.Helper()
	return newURL(t, engine, false)
}

func newURL(t testing.TB, engine string, prepared bool) string {
	t.Helper()
	if engine == "sqlite" {
		path := filepath.Join(t.TempDir(), "myelin.db")
		if prepared {
			raw, err := preparedSQLite()
			if err != nil {
				t.Fatalf("testdb: %v", err)
			}
			if err := os.WriteFile(path, raw, 0o600); err != nil {
				t.Fatalf("testdb: %v", err)
			}
		}
		return path
	}
	base := os.Getenv(PostgresEnv)
	if base == "" {
		t.Fatalf("%s is not set", PostgresEnv)
	}
	if _, err := url.Parse(base); err != nil {
		t.Fatalf("testdb: %s: %v", PostgresEnv, err)
	}
	if !prepared {
		name, err := createPostgres(base, "", testPrefix)
		if err != nil {
			t.Fatalf("testdb: %v", err)
		}
		t.Cleanup(func() {
			if err := dropPostgres(base, name); err != nil {
				t.Logf("testdb: %v", err)
			}
		})
		return postgresURL(base, name)
	}
	tmpl, err := preparedPostgres(base)
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	name, err := tmpl.lease()
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	t.Cleanup(func() {
		if err := tmpl.release(name); err != nil {
			t.Logf("testdb: %v", err)
		}
	})
	return postgresURL(base, name)
}

// preparedSQLite returns the contents of a prepared SQLite database,
// preparing it on first use.
func preparedSQLite() ([]byte, error) {
	schema.mu.Lock()
	defer schema.mu.Unlock()
	if err := schema.err["sqlite"]; err != nil {
		return nil, err
	}
	if schema.sqlite != nil {
		return schema.sqlite, nil
	}
	raw, err := prepareSQLite(schema.prepare)
	if err != nil {
		setErr("sqlite", err)
		return nil, err
	}
	schema.sqlite = raw
	return raw, nil
}

func prepareSQLite(prepare func(context.Context, string) error) ([]byte, error) {
	dir, err := os.MkdirTemp("", "myelin-testdb-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "myelin.db")
	if err := prepare(context.Background(), path); err != nil {
		return nil, fmt.Errorf("prepare sqlite: %w", err)
	}
	// The preparation closed the database, which copies the write-ahead
	// log into the file: the file alone is the whole database. A log
	// left behind would hold part of it, so a copy without it would be
	// wrong.
	if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > 0 {
		return nil, fmt.Errorf("prepare sqlite: %s-wal (%d bytes) left behind: was the database closed?", path, fi.Size())
	}
	return os.ReadFile(path)
}

func setErr(engine string, err error) {
	if schema.err == nil {
		schema.err = map[string]error{}
	}
	schema.err[engine] = err
}
