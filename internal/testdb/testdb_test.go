package testdb

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"
)

// prepare is this package's schema: a table with a sequence, rows the
// preparation inserts, and a table that starts empty.
func prepare(ctx context.Context, dsn string) error {
	driver, stmts := "sqlite", []string{
		`CREATE TABLE seeded (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT NOT NULL)`,
		`CREATE TABLE empty (k TEXT PRIMARY KEY)`,
		`INSERT INTO seeded (v) VALUES ('one'), ('it''s two')`,
	}
	if strings.HasPrefix(dsn, "postgres") {
		driver, stmts = "pgx", []string{
			`CREATE TABLE seeded (id BIGSERIAL PRIMARY KEY, v TEXT NOT NULL UNIQUE)`,
			`CREATE TABLE empty (k TEXT PRIMARY KEY REFERENCES seeded (v))`,
			`INSERT INTO seeded (v) VALUES ('one'), ('it''s two')`,
		}
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

func init() { SetSchema(prepare) }

func open(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	driver := "sqlite"
	if strings.HasPrefix(dsn, "postgres") {
		driver = "pgx"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// wantFresh checks that a database is in the prepared state: the seeded
// rows only, and the sequence where the preparation left it.
func wantFresh(t *testing.T, db *sql.DB) {
	t.Helper()
	ctx := context.Background()
	var rows []string
	r, err := db.QueryContext(ctx, `SELECT v FROM seeded ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
		var v string
		if err := r.Scan(&v); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, v)
	}
	r.Close()
	if strings.Join(rows, "|") != "one|it's two" {
		t.Fatalf("seeded rows %q, want the preparation's", rows)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM empty`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("empty has %d rows (%v)", n, err)
	}
	var id int64
	if err := db.QueryRowContext(ctx, `INSERT INTO seeded (v) VALUES ('three') RETURNING id`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if id != 3 {
		t.Fatalf("next id %d, want 3: the sequence was not set back", id)
	}
}

// TestPreparedDatabases: every database is in the prepared state, also
// a PostgreSQL one reused after a test wrote to it; one whose schema a
// test changed is not reused.
func TestPreparedDatabases(t *testing.T) {
	for _, engine := range Engines() {
		t.Run(engine, func(t *testing.T) {
			var used []string
			for i := range 3 {
				t.Run("use", func(t *testing.T) {
					dsn := NewURL(t, engine)
					used = append(used, dsn)
					db := open(t, dsn)
					wantFresh(t, db)
					if _, err := db.Exec(`INSERT INTO empty (k) VALUES ('one')`); err != nil {
						t.Fatal(err)
					}
					if i == 2 {
						if _, err := db.Exec(`ALTER TABLE empty ADD COLUMN extra TEXT`); err != nil {
							t.Fatal(err)
						}
					}
				})
			}
			if engine == "sqlite" || t.Failed() {
				return
			}
			// The second test got the first's database back, emptied.
			if used[0] != used[1] {
				t.Fatalf("a released database was not reused: %s then %s", used[0], used[1])
			}
			// The third changed the schema: its database was dropped.
			dsn := NewURL(t, engine)
			if dsn == used[2] {
				t.Fatal("a database whose schema a test changed was reused")
			}
			wantFresh(t, open(t, dsn))
		})
	}
}

// TestPreparedSQLiteIsAFile: the prepared SQLite database is a file of
// its own, with no write-ahead log holding part of it.
func TestPreparedSQLiteIsAFile(t *testing.T) {
	dsn := NewURL(t, "sqlite")
	if _, err := os.Stat(dsn + "-wal"); !os.IsNotExist(err) {
		t.Fatalf("a -wal file beside the copy: %v", err)
	}
	if filepath.Base(dsn) != "myelin.db" {
		t.Fatalf("path %s", dsn)
	}
	wantFresh(t, open(t, dsn))
}

// TestEmptyDatabases: ForEachEmpty's databases have nothing of the
// prepared schema, for the tests of the preparation itself.
func TestEmptyDatabases(t *testing.T) {
	ran := 0
	ForEachEmpty(t, func(t *testing.T, dsn string) {
		ran++
		var n int
		if err := open(t, dsn).QueryRowContext(context.Background(), `SELECT COUNT(*) FROM seeded`).Scan(&n); err == nil {
			t.Fatalf("an empty database has the prepared table seeded (%d rows)", n)
		}
	})
	if ran != len(Engines()) {
		t.Fatalf("ForEachEmpty ran %d times for %d engines", ran, len(Engines()))
	}
}
