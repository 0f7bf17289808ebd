package store_test

import (
	"context"
	"slices"
	"testing"

	"github.com/myelin-chat/myelin/internal/testdb"
)

// TestPartialStateCompletedInRange: PartialStateCompleted answers most
// ranges from the highest completion position it keeps in memory; a
// completion made after it has answered must still be found, and a
// server started on a database that holds completions finds them too.
func TestPartialStateCompletedInRange(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db := open(t, url)
		rooms := func(db interface {
			PartialStateCompleted(context.Context, int64, int64) ([]string, error)
		}, after, upto int64) []string {
			t.Helper()
			got, err := db.PartialStateCompleted(ctx, after, upto)
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(got)
			return got
		}
		if got := rooms(db, 0, 100); len(got) != 0 {
			t.Fatalf("before any completion: %v", got)
		}
		if _, err := db.CompletePartialState(ctx, "!a:x", 50, nil, nil); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			after, upto int64
			want        []string
		}{{0, 100, []string{"!a:x"}}, {49, 50, []string{"!a:x"}}, {50, 100, nil}, {0, 49, nil}} {
			if got := rooms(db, c.after, c.upto); !slices.Equal(got, c.want) {
				t.Errorf("(%d, %d]: %v, want %v", c.after, c.upto, got, c.want)
			}
		}
		if _, err := db.CompletePartialState(ctx, "!b:x", 70, nil, nil); err != nil {
			t.Fatal(err)
		}
		db.Close()
		again := open(t, url)
		if got := rooms(again, 60, 100); !slices.Equal(got, []string{"!b:x"}) {
			t.Errorf("restarted, (60, 100]: %v, want [!b:x]", got)
		}
		if got := rooms(again, 70, 100); len(got) != 0 {
			t.Errorf("restarted, (70, 100]: %v", got)
		}
	})
}
