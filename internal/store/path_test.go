package store_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/myelin-chat/myelin/internal/store"
)

// TestPathWithURICharacters: a data directory whose name holds '#', '?'
// or '%' opens the database file in it, not a truncated path.
func TestPathWithURICharacters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "odd#dir?x%y")
	path := filepath.Join(dir, "myelin.db")
	db, err := store.Open(context.Background(), path, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.MaxStreamPos(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the database is not at %s: %v", path, err)
	}
}
