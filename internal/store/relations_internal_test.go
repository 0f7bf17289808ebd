package store

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/myelin-chat/myelin/internal/testdb"
)

// TestRelationQueriesUseRelationsIndex: events_relations is partial
// (relates_to IS NOT NULL, migration 0050), and each query shape that
// looks events up by their parent can still use it on both databases: a
// condition on relates_to implies the index's. On SQLite the queries
// name the index (INDEXED BY fails to plan if it cannot be used); on
// PostgreSQL, which plans by cost, the other indexes a query could take
// (by room) are dropped in a transaction that is rolled back and sequential scans
// priced out, so that the plan shows whether events_relations serves.
func TestRelationQueriesUseRelationsIndex(t *testing.T) {
	// %[1]s is where SQLite's INDEXED BY goes after "events".
	queries := map[string]struct {
		query string
		args  []any
	}{
		"children": {`SELECT relates_to, rel_type, event_nid FROM events%[1]s WHERE relates_to IN ($1, $2) AND rel_type IN ($3)
			AND status = 0 AND redacted_by IS NULL AND stream_pos IS NOT NULL ORDER BY stream_pos`, []any{"$a", "$b", "m.thread"}},
		"thread summaries": {`SELECT relates_to, room_id, COUNT(*) FROM events%[1]s WHERE relates_to IN ($1) AND rel_type = 'm.thread'
			AND status = 0 AND redacted_by IS NULL AND stream_pos IS NOT NULL GROUP BY relates_to, room_id`, []any{"$a"}},
		"relation tree": {`WITH RECURSIVE related (event_id, depth) AS (
			SELECT event_id, 1 FROM events%[1]s WHERE relates_to = $1 AND room_id = $2 AND status = 0 AND redacted_by IS NULL
			UNION
			SELECT e.event_id, r.depth + 1 FROM events e%[1]s JOIN related r ON e.relates_to = r.event_id
			WHERE r.depth < 3 AND e.room_id = $2 AND e.status = 0 AND e.redacted_by IS NULL
		) SELECT event_id FROM related`, []any{"$a", "!r:hs"}},
	}
	testdb.ForEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db, err := Open(ctx, url, 4)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for name, q := range queries {
			var plan string
			if db.Engine() == "sqlite" {
				plan = strings.Join(explainSQLite(t, db, fmt.Sprintf(q.query, " INDEXED BY events_relations"), q.args...), "\n")
			} else {
				plan = explainPostgres(t, db, fmt.Sprintf(q.query, ""), q.args...)
			}
			want := 1
			if name == "relation tree" {
				want = 2 // the recursive step looks up each found event's children
			}
			if strings.Count(plan, "events_relations") < want {
				t.Errorf("%s: want events_relations in %d steps of the plan, got\n%s", name, want, plan)
			}
		}
	})
}

// explainPostgres is EXPLAIN's text with the events' other indexes that
// such a query could take (by room, relations or threads) dropped and sequential scans priced out, in a
// transaction that is rolled back.
func explainPostgres(t *testing.T, db *DB, query string, args ...any) string {
	t.Helper()
	tx, err := db.write.BeginTx(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	for _, q := range []string{`DROP INDEX events_room_relations`, `DROP INDEX events_room_threads`, `DROP INDEX events_room_stream`,
		`DROP INDEX events_room_ts`, `SET LOCAL enable_seqscan = off`} {
		if _, err := tx.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := tx.Query(`EXPLAIN `+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}
