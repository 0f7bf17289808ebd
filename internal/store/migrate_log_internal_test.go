package store

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/myelin-chat/myelin/internal/testdb"
)

// An upgrade logs each migration as it starts and when it is applied,
// with its duration (docs/operations.md, "Upgrading and rolling back"):
// the admin of a big database sees which step a long start is on. A new
// database's own creation logs nothing of the kind.
func TestUpgradeLogsMigrations(t *testing.T) {
	testdb.ForEachEmpty(t, func(t *testing.T, url string) {
		ctx := context.Background()
		ms, err := loadMigrations()
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) < 3 {
			t.Fatalf("%d migrations", len(ms))
		}
		var fresh bytes.Buffer
		db, err := open(url, 2)
		if err != nil {
			t.Fatal(err)
		}
		db.log = slog.New(slog.NewTextHandler(&fresh, nil))
		// The database an older binary left: all but the last two.
		if err := db.migrateUpTo(ctx, ms[len(ms)-3].version); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(fresh.String(), "applying database migration") {
			t.Fatalf("creating a database logged its migrations as an upgrade:\n%s", fresh.String())
		}
		var upgrade bytes.Buffer
		db.log = slog.New(slog.NewTextHandler(&upgrade, nil))
		if err := db.migrate(ctx); err != nil {
			t.Fatal(err)
		}
		db.Close()
		log := upgrade.String()
		for _, m := range ms[len(ms)-2:] {
			start := strings.Index(log, `msg="applying database migration" migration=`+m.name)
			end := strings.Index(log, `msg="database migration applied" migration=`+m.name+" duration=")
			if start < 0 || end < start {
				t.Errorf("migration %s: no start line before its applied line:\n%s", m.name, log)
			}
		}
		if n := strings.Count(log, "applying database migration"); n != 2 {
			t.Errorf("%d migrations logged as starting, want the 2 the database lacked:\n%s", n, log)
		}
	})
}
