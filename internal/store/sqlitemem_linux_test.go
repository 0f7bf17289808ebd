//go:build linux && (amd64 || arm64 || loong64 || ppc64le || s390x || riscv64 || 386 || arm) && !libc.membrk && !libc.memgrind

package store

import (
	"bytes"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestReleaseSQLiteMemoryKnowsLibc pins the libc and memory versions
// whose variables ReleaseSQLiteMemory reaches by name (libc's allocator
// and its mutex, in libc_musl.go): an upgrade must check they are still
// there, of the same types, and then move the versions here.
func TestReleaseSQLiteMemoryKnowsLibc(t *testing.T) {
	raw, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range []string{"modernc.org/libc v1.80.1", "modernc.org/memory v1.12.1"} {
		if !bytes.Contains(raw, []byte("\t"+req)) {
			t.Errorf("go.mod does not require %s, which ReleaseSQLiteMemory was checked against", req)
		}
	}
}

// TestReleaseSQLiteMemoryReturnsIt: the memory of SQLite connections
// that closed (their page caches) stays resident in libc's allocator
// until ReleaseSQLiteMemory hands it back.
func TestReleaseSQLiteMemoryReturnsIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mem.db")
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=cache_size(-32768)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(4)
	if _, err := db.Exec(`CREATE TABLE t (b BLOB)`); err != nil {
		t.Fatal(err)
	}
	blob := bytes.Repeat([]byte{'x'}, 3000)
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for range 4000 { // 12 MB, in the page cache of the connection that wrote it
		if _, err := tx.Exec(`INSERT INTO t (b) VALUES (?)`, blob); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow(`SELECT sum(length(b)) FROM t`).Scan(&n); err != nil || n != 4000*len(blob) {
		t.Fatalf("sum: %d, %v", n, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	before := residentKiB(t)
	ReleaseSQLiteMemory()
	after := residentKiB(t)
	t.Logf("RSS %d KiB before ReleaseSQLiteMemory, %d after", before, after)
	if before-after < 2<<10 {
		t.Errorf("RSS %d KiB before ReleaseSQLiteMemory, %d after: want at least 2 MiB returned", before, after)
	}
}

func residentKiB(t *testing.T) int {
	t.Helper()
	raw, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skip(err)
	}
	f := bytes.Fields(raw)
	pages, err := strconv.Atoi(string(f[1]))
	if err != nil {
		t.Fatal(err)
	}
	return pages * os.Getpagesize() / 1024
}

// TestReleaseSQLiteMemoryShrinksTheWriter: the writer never closes, so
// the page cache a burst of writes filled is SQLite's until it is asked
// to let go of it (PRAGMA shrink_memory).
func TestReleaseSQLiteMemoryShrinksTheWriter(t *testing.T) {
	db, err := Open(t.Context(), filepath.Join(t.TempDir(), "mem.db"), 2, CacheKiB(32<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.write.Exec(`CREATE TABLE shrink_t (b BLOB)`); err != nil {
		t.Fatal(err)
	}
	blob := bytes.Repeat([]byte{'x'}, 3000)
	tx, err := db.write.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for range 4000 { // 12 MB, in the writer's page cache
		if _, err := tx.Exec(`INSERT INTO shrink_t (b) VALUES (?)`, blob); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	trimLibc() // what earlier tests' connections left
	before := residentKiB(t)
	ReleaseSQLiteMemory()
	after := residentKiB(t)
	t.Logf("RSS %d KiB before ReleaseSQLiteMemory, %d after", before, after)
	if before-after < 2<<10 {
		t.Errorf("RSS %d KiB before ReleaseSQLiteMemory, %d after: want at least 2 MiB of the writer's cache returned", before, after)
	}
}

// TestReleaseSQLiteMemoryClosesStatements: prepared statements hold
// SQLite's memory on every connection that ran them, the writer's for
// the process's life; a release drops them from the cache (queries
// prepare them again) and the next one, once no query can still be
// about to use them, closes them.
func TestReleaseSQLiteMemoryClosesStatements(t *testing.T) {
	db, err := Open(t.Context(), filepath.Join(t.TempDir(), "mem.db"), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := t.Context()
	const n = 1000
	query := func(i int) error {
		var got int
		q := `SELECT count(*) + ` + strconv.Itoa(i) + ` FROM events e JOIN rooms r ON r.room_id = e.room_id
			WHERE e.room_id = $1 AND e.event_id <> $2 AND r.room_version <> $3 AND e.stream_pos > $4`
		if err := db.w().queryRow(ctx, q, []any{"!r", "$e", "1", 0}, &got); err != nil {
			return err
		}
		if got != i {
			return fmt.Errorf("query %d answered %d", i, got)
		}
		return nil
	}
	for i := range n {
		if err := query(i); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(db.writeStmts.stmts); got < n {
		t.Fatalf("%d statements cached, want %d", got, n)
	}
	ReleaseSQLiteMemory()
	if got := len(db.writeStmts.stmts); got != 0 {
		t.Fatalf("%d statements cached after a release, want none", got)
	}
	retired := db.writeStmts.retired[0]
	// Retired statements still answer a query that took them before the
	// release; the cache prepares anew.
	if _, err := retired.Exec("!r", "$e", "1", 0); err != nil {
		t.Fatalf("a statement retired by one release: %v", err)
	}
	if err := query(7); err != nil {
		t.Fatal(err)
	}
	db.writeStmts.mu.Lock()
	db.writeStmts.retiredAt = db.writeStmts.retiredAt.Add(-stmtRetireAfter)
	db.writeStmts.mu.Unlock()
	trimLibc()
	before := residentKiB(t)
	ReleaseSQLiteMemory()
	after := residentKiB(t)
	t.Logf("RSS %d KiB before the second ReleaseSQLiteMemory, %d after", before, after)
	if _, err := retired.Exec("!r", "$e", "1", 0); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("a retired statement after the second release: %v, want closed", err)
	}
	if before-after < 1<<10 {
		t.Errorf("RSS %d KiB before the second ReleaseSQLiteMemory, %d after: want at least 1 MiB of statements returned", before, after)
	}
}
