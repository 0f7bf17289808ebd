// Package testdb gives tests fresh databases: SQLite always, and
// PostgreSQL whenever MYELIN_TEST_POSTGRES holds a connection URL (a new
// database per test, dropped when the test ends).
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
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

// NewURL creates an empty database of the engine and returns its URL.
func NewURL(t testing.TB, engine string) string {
	t.Helper()
	if engine == "sqlite" {
		return filepath.Join(t.TempDir(), "myelin.db")
	}
	base := os.Getenv(PostgresEnv)
	if base == "" {
		t.Fatalf("%s is not set", PostgresEnv)
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "myelin_test_" + hex.EncodeToString(b[:])
	if _, err := admin.ExecContext(context.Background(), "CREATE DATABASE "+name); err != nil {
		admin.Close()
		t.Fatalf("testdb: create database: %v", err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		if _, err := admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("testdb: drop %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("testdb: %s: %v", PostgresEnv, err)
	}
	u.Path = "/" + name
	return u.String()
}
