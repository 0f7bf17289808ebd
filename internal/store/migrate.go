package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations/*.sql
var migrations embed.FS

type migration struct {
	version int
	name    string
	ddl     string
}

// loadMigrations reads migrations/NNNN_name.sql in version order.
func loadMigrations() ([]migration, error) {
	entries, err := migrations.ReadDir("migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("store: migration %q is not named NNNN_name.sql", e.Name())
		}
		raw, err := migrations.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: e.Name(), ddl: string(raw)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	// Versions must be unique but may have gaps: branches developed side
	// by side each reserve a number, and each migration is recorded (and
	// skipped on later starts) by its own version.
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, fmt.Errorf("store: migrations %s and %s share a version", out[i-1].name, out[i].name)
		}
	}
	return out, nil
}

// migrate brings the schema up to date, one transaction per migration.
func (db *DB) migrate(ctx context.Context) error {
	return db.migrateUpTo(ctx, math.MaxInt)
}

// migrateUpTo runs the migrations up to version last (tests of a
// migration's data conversion stop before it).
func (db *DB) migrateUpTo(ctx context.Context, last int) error {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	if _, err := db.w().exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_ts BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("store: schema_migrations: %w", err)
	}
	recorded, err := db.refuseNewerSchema(ctx, ms)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if m.version > last {
			break
		}
		started := time.Now()
		applied := false
		err := db.tx(ctx, func(c conn) error {
			if err := db.dialect.lockMigrations(ctx, c); err != nil {
				return err
			}
			var n int
			if err := c.queryRow(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = $1`, []any{m.version}, &n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if recorded > 0 {
				// On an upgrade, the admin watching the log sees which
				// step runs before it ends, however long it takes.
				db.logger().Info("applying database migration", "migration", m.name)
			}
			for _, stmt := range splitStatements(db.dialect.schema(forEngine(m.ddl, db.dialect.name()))) {
				if _, err := c.exec(ctx, stmt); err != nil {
					return fmt.Errorf("%w\n%s", err, stmt)
				}
			}
			_, err := c.exec(ctx, `INSERT INTO schema_migrations (version, name, applied_ts) VALUES ($1, $2, $3)`,
				m.version, m.name, time.Now().UnixMilli())
			applied = err == nil
			return err
		})
		if err != nil {
			return fmt.Errorf("store: migration %s: %w", m.name, err)
		}
		if applied && (recorded > 0 || time.Since(started) > time.Second) {
			// An upgrade of a big database can spend minutes here; the
			// admin watching the log sees which step it is on. A new
			// database's own creation is not worth thirty lines.
			db.logger().Info("database migration applied", "migration", m.name, "duration", time.Since(started).Round(time.Millisecond))
		}
	}
	return nil
}

// ErrSchemaTooNew is returned by Open when the database holds migrations
// this binary does not know: it was upgraded by a newer Myelin, and an
// older binary writing to it could corrupt what the newer schema means.
var ErrSchemaTooNew = errors.New("store: the database was migrated by a newer version of Myelin")

// refuseNewerSchema compares the recorded migrations with the binary's
// own. Versions have gaps, so "newer" means any recorded version that
// this binary does not ship, not only one above its highest. It returns
// how many migrations the database has recorded.
func (db *DB) refuseNewerSchema(ctx context.Context, ms []migration) (int, error) {
	known := make(map[int]bool, len(ms))
	for _, m := range ms {
		known[m.version] = true
	}
	type row struct {
		version int
		name    string
	}
	rows, err := collect(ctx, db.w(), func(scan func(...any) error) (row, error) {
		var r row
		err := scan(&r.version, &r.name)
		return r, err
	}, `SELECT version, name FROM schema_migrations ORDER BY version`)
	if err != nil {
		return 0, fmt.Errorf("store: schema_migrations: %w", err)
	}
	var unknown []string
	for _, r := range rows {
		if !known[r.version] {
			unknown = append(unknown, r.name)
		}
	}
	if len(unknown) == 0 {
		return len(rows), nil
	}
	return 0, fmt.Errorf("%w (it has %s, which this binary does not know); "+
		"run the newer binary again, or restore the backup taken before the upgrade (docs/operations.md, \"Upgrading and rolling back\")",
		ErrSchemaTooNew, strings.Join(unknown, ", "))
}

// forEngine keeps the lines of a migration meant for engine. A line
// "-- @sqlite" or "-- @postgres" starts a block for that engine only, and
// "-- @all" ends it: the few statements with no common spelling (the
// full-text index of 0010_search.sql) live in such blocks, everything
// else is written once.
func forEngine(ddl, engine string) string {
	var out []string
	keep := true
	for _, l := range strings.Split(ddl, "\n") {
		if t := strings.TrimSpace(l); strings.HasPrefix(t, "-- @") {
			block := strings.TrimPrefix(t, "-- @")
			keep = block == "all" || block == engine
			continue
		}
		if keep {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// splitStatements splits a migration on semicolons at line ends; our DDL
// has no semicolons inside literals, and a trigger's body is written on
// its CREATE TRIGGER line so that its inner semicolons end no line.
func splitStatements(ddl string) []string {
	var out []string
	for _, part := range strings.Split(ddl, ";\n") {
		var lines []string
		for _, l := range strings.Split(part, "\n") {
			if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "--") {
				lines = append(lines, l)
			}
		}
		if s := strings.TrimSpace(strings.TrimSuffix(strings.Join(lines, "\n"), ";")); s != "" {
			out = append(out, s)
		}
	}
	return out
}
