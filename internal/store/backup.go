package store

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
)

// SQLitePath is the file a SQLite database URL names (a plain path, or a
// file: URL whose query is dropped), or "" for a PostgreSQL URL.
func SQLitePath(url string) string {
	if IsPostgres(url) {
		return ""
	}
	path, isURL := strings.CutPrefix(url, "file:")
	if i := strings.IndexByte(path, '?'); isURL && i >= 0 {
		path = path[:i]
	}
	return path
}

// rawSQLite opens the SQLite file at path without creating it and without
// running migrations: backups and restores read a database as it is.
func rawSQLite(path string, readOnly bool) (*sql.DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	escaped := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	dsn := "file:" + escaped + "?_pragma=busy_timeout(10000)"
	if readOnly {
		dsn += "&mode=ro"
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// BackupSQLite writes a consistent copy of the SQLite database at path
// to dest, which must not exist, while the server may be running:
// VACUUM INTO reads one snapshot in a read transaction, so every
// transaction committed before it began is in the copy and none after,
// and the server's writer is never blocked. The copy is compacted and
// has no write-ahead log of its own.
func BackupSQLite(ctx context.Context, path, dest string) error {
	if _, err := os.Stat(dest); err == nil {
		return fmt.Errorf("store: backup: %s already exists", dest)
	}
	db, err := rawSQLite(path, false)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, dest); err != nil {
		return fmt.Errorf("store: backup: %w", err)
	}
	return nil
}

// RecordedMigrations lists the migrations recorded in the database at
// url, without opening it as a server would (nothing is migrated).
func RecordedMigrations(ctx context.Context, url string) ([]string, error) {
	var db *sql.DB
	var err error
	if path := SQLitePath(url); path != "" {
		db, err = rawSQLite(path, true)
	} else {
		db, err = sql.Open("pgx", url)
	}
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT name FROM schema_migrations ORDER BY version`)
	if err != nil {
		return nil, fmt.Errorf("store: schema_migrations: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, rows.Err()
}

// UnknownMigrations returns those of names (as RecordedMigrations gives
// them) that this binary does not ship: a database holding any was
// migrated by a newer Myelin, and Open refuses it.
func UnknownMigrations(names []string) ([]string, error) {
	ms, err := loadMigrations()
	if err != nil {
		return nil, err
	}
	known := map[string]bool{}
	for _, m := range ms {
		num, _, _ := strings.Cut(m.name, "_")
		known[num] = true
	}
	var unknown []string
	for _, n := range names {
		if num, _, _ := strings.Cut(n, "_"); !known[num] {
			unknown = append(unknown, n)
		}
	}
	return unknown, nil
}
