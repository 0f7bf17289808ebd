// Package testdb gives tests fresh databases: SQLite always, and
// PostgreSQL whenever MYELIN_TEST_POSTGRES holds a connection URL (a new
// database per test, dropped when the test ends).
//
// A test binary that registers a Schema (testserver does: every test
// server's database is migrated on start) gets databases that are
// copies of one prepared per engine per process, instead of empty ones:
// migrating a fresh PostgreSQL database took about a second, and the
// end-to-end packages start hundreds of servers.
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

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

// schema is the registered preparation (see SetSchema) and its
// prepared copies, one per engine, made on first use.
var schema struct {
	mu      sync.Mutex
	prepare func(ctx context.Context, url string) error
	// sqlite is the prepared database file's contents.
	sqlite []byte
	// postgres names the prepared database new ones are copied from.
	postgres string
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
// packages that test the preparation itself (the store's migrations)
// must not link a package that calls it.
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
	template := ""
	if prepared {
		var err error
		if template, err = preparedPostgres(base); err != nil {
			t.Fatalf("testdb: %v", err)
		}
	}
	name, err := createPostgres(base, template)
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

// preparedPostgres returns the name of the prepared PostgreSQL database,
// preparing it on first use.
func preparedPostgres(base string) (string, error) {
	schema.mu.Lock()
	defer schema.mu.Unlock()
	if err := schema.err["postgres"]; err != nil {
		return "", err
	}
	if schema.postgres != "" {
		return schema.postgres, nil
	}
	name, err := preparePostgres(base, schema.prepare)
	if err != nil {
		setErr("postgres", err)
		return "", err
	}
	schema.postgres = name
	return name, nil
}

// templatePrefix starts the names of prepared PostgreSQL databases; the
// Unix time of their making follows, so that a later process can drop
// those that a killed one left behind (a test process has no hook at
// its end that could drop its own).
const templatePrefix = "myelin_tmpl_"

// templateMaxAge is the age past which a prepared database is taken to
// be left behind: longer than any test binary runs (CI's timeouts are
// 20 minutes).
const templateMaxAge = 2 * time.Hour

func preparePostgres(base string, prepare func(context.Context, string) error) (string, error) {
	dropStaleTemplates(base)
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := fmt.Sprintf("%s%d_%s", templatePrefix, time.Now().Unix(), hex.EncodeToString(b[:]))
	admin, err := sql.Open("pgx", base)
	if err != nil {
		return "", err
	}
	defer admin.Close()
	if _, err := admin.ExecContext(context.Background(), "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("create database: %w", err)
	}
	if err := prepare(context.Background(), postgresURL(base, name)); err != nil {
		_ = dropPostgres(base, name)
		return "", fmt.Errorf("prepare postgres: %w", err)
	}
	return name, nil
}

// dropStaleTemplates drops the prepared databases of processes that
// ended long ago (best effort: errors are ignored, the next process
// tries again).
func dropStaleTemplates(base string) {
	admin, err := sql.Open("pgx", base)
	if err != nil {
		return
	}
	defer admin.Close()
	rows, err := admin.QueryContext(context.Background(),
		`SELECT datname FROM pg_database WHERE datname LIKE 'myelin\_tmpl\_%'`)
	if err != nil {
		return
	}
	var stale []string
	for rows.Next() {
		var name string
		if rows.Scan(&name) != nil {
			continue
		}
		stamp, _, _ := strings.Cut(strings.TrimPrefix(name, templatePrefix), "_")
		var unix int64
		if _, err := fmt.Sscan(stamp, &unix); err == nil && time.Since(time.Unix(unix, 0)) > templateMaxAge {
			stale = append(stale, name)
		}
	}
	rows.Close()
	for _, name := range stale {
		_, _ = admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	}
}

// createPostgres creates a database, a copy of template if it is not
// empty, and returns its name.
func createPostgres(base, template string) (string, error) {
	admin, err := sql.Open("pgx", base)
	if err != nil {
		return "", err
	}
	defer admin.Close()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "myelin_test_" + hex.EncodeToString(b[:])
	stmt := "CREATE DATABASE " + name
	if template != "" {
		stmt += " TEMPLATE " + template
	}
	if _, err := admin.ExecContext(context.Background(), stmt); err != nil {
		return "", fmt.Errorf("create database: %w", err)
	}
	return name, nil
}

func dropPostgres(base, name string) error {
	admin, err := sql.Open("pgx", base)
	if err != nil {
		return err
	}
	defer admin.Close()
	if _, err := admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop %s: %w", name, err)
	}
	return nil
}

// postgresURL is base (which NewURL has parsed) with its database
// replaced by name.
func postgresURL(base, name string) string {
	u, _ := url.Parse(base)
	u.Path = "/" + name
	return u.String()
}

func setErr(engine string, err error) {
	if schema.err == nil {
		schema.err = map[string]error{}
	}
	schema.err[engine] = err
}
