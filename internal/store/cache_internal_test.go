package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/myelin-chat/myelin/internal/testdb"
)

// IN lists of every length share a few statement texts (lengths rounded
// up to powers of two), and the padding changes no answer, on either
// engine.
func TestINListsShareStatements(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db, err := Open(ctx, url, 4)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.write.ExecContext(ctx, `CREATE TABLE in_test (v TEXT)`); err != nil {
			t.Fatal(err)
		}
		var all []string
		for i := 0; i < 100; i++ {
			v := fmt.Sprintf("v%03d", i)
			all = append(all, v)
			if _, err := db.w().exec(ctx, `INSERT INTO in_test (v) VALUES ($1)`, v); err != nil {
				t.Fatal(err)
			}
		}
		for n := 1; n <= 100; n++ {
			want := all[100-n:]
			args := inArgs(want)
			got, err := db.r().strings(ctx, `SELECT v FROM in_test WHERE v IN (`+placeholders(len(args), 1)+`) ORDER BY v`, args...)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("IN list of %d: got %v", n, got)
			}
			// A store query with an IN list, too.
			if _, err := db.EventsByID(ctx, want); err != nil {
				t.Fatal(err)
			}
		}
		if db.readStmts == nil {
			return
		}
		shapes := 0
		db.readStmts.mu.Lock()
		for q := range db.readStmts.stmts {
			if strings.Contains(q, "FROM events WHERE event_id IN") {
				shapes++
			}
		}
		db.readStmts.mu.Unlock()
		if shapes > 8 {
			t.Fatalf("%d prepared statements for EventsByID, want at most 8 (one per power of two)", shapes)
		}
	})
}

// The statement cache stops at maxStmts; queries past it still run.
func TestStmtCacheIsBounded(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, t.TempDir()+"/s.db", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for i := 0; i < maxStmts+50; i++ {
		var got int
		if err := db.r().queryRow(ctx, fmt.Sprintf("SELECT %d", i), nil, &got); err != nil || got != i {
			t.Fatalf("SELECT %d: %d, %v", i, got, err)
		}
	}
	db.readStmts.mu.Lock()
	n := len(db.readStmts.stmts)
	db.readStmts.mu.Unlock()
	if n > maxStmts {
		t.Fatalf("%d prepared statements, want at most %d", n, maxStmts)
	}
}

// The rewrite cache stops at maxRewritten; rewriting past it still works.
func TestRewriteCacheIsBounded(t *testing.T) {
	for i := 0; i < maxRewritten+50; i++ {
		if got, want := (sqlite{}).rewrite(fmt.Sprintf("SELECT %d WHERE a = $1", i)), fmt.Sprintf("SELECT %d WHERE a = ?", i); got != want {
			t.Fatalf("rewrite: %q, want %q", got, want)
		}
	}
	rewritten.RLock()
	n := len(rewritten.m)
	rewritten.RUnlock()
	if n > maxRewritten {
		t.Fatalf("%d cached rewrites, want at most %d", n, maxRewritten)
	}
}
