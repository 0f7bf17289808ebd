package store

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/myelin-chat/myelin/internal/testdb"
)

// TestPresenceChangesSharedRooms: both forms of PresenceChanges (an
// initial sync's and an incremental one's) give the viewer's own
// presence and that of users joined to a room the viewer is joined to,
// not of users who left it or share none, in position order; and on
// SQLite the incremental form probes per change instead of listing every
// co-member (a "LIST SUBQUERY" in the plan), whose cost grows with the
// rooms' sizes rather than with the changes.
func TestPresenceChangesSharedRooms(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db, err := Open(ctx, url, 4)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		const v = "@v:hs"
		members := []struct{ room, user, membership string }{
			{"!a:hs", v, "join"}, {"!a:hs", "@x:hs", "join"}, {"!a:hs", "@gone:hs", "leave"},
			{"!b:hs", v, "join"}, {"!b:hs", "@z:hs", "join"}, {"!b:hs", "@x:hs", "join"},
			{"!c:hs", "@w:hs", "join"}, {"!c:hs", "@gone:hs", "join"},
			{"!d:hs", v, "leave"}, {"!d:hs", "@d:hs", "join"},
		}
		for i, m := range members {
			if _, err := db.w().exec(ctx, `INSERT INTO current_state (room_id, type, state_key, event_nid, membership) VALUES ($1, 'm.room.member', $2, $3, $4)`,
				m.room, m.user, i+1, m.membership); err != nil {
				t.Fatal(err)
			}
		}
		for i, u := range []string{"@x:hs", v, "@gone:hs", "@w:hs", "@z:hs", "@d:hs"} {
			if err := db.PutPresence(ctx, Presence{UserID: u, Presence: "online", StreamPos: int64(i + 1)}); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range []struct {
			after, upto int64
			want        []string
		}{
			{0, 10, []string{"@x:hs", v, "@z:hs"}},
			{0, 4, []string{"@x:hs", v}},
			{1, 10, []string{v, "@z:hs"}},
			{2, 10, []string{"@z:hs"}},
			{5, 10, nil},
		} {
			rows, err := db.PresenceChanges(ctx, v, c.after, c.upto)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range rows {
				got = append(got, r.UserID)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("PresenceChanges(%d, %d) = %v, want %v", c.after, c.upto, got, c.want)
			}
		}
		if db.Engine() != "sqlite" {
			return
		}
		plan := explainSQLite(t, db, presenceChangesSince, v, 1, 10)
		if text := strings.Join(plan, "\n"); strings.Contains(text, "LIST SUBQUERY") || !strings.Contains(text, "user_presence_stream") {
			t.Errorf("incremental presence changes: want a scan of the window probing each change, got plan\n%s", text)
		}
	})
}

// explainSQLite is EXPLAIN QUERY PLAN's detail column.
func explainSQLite(t *testing.T, db *DB, query string, args ...any) []string {
	t.Helper()
	rows, err := db.read.QueryContext(context.Background(), "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		if s, ok := vals[len(vals)-1].(string); ok {
			out = append(out, s)
		}
	}
	return out
}
