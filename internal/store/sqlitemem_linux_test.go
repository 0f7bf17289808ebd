//go:build linux && (amd64 || arm64 || loong64 || ppc64le || s390x || riscv64 || 386 || arm) && !libc.membrk && !libc.memgrind

package store

import (
	"bytes"
	"database/sql"
	"os"
	"path/filepath"
	"strconv"
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
