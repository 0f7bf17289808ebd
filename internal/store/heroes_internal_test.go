package store

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/myelin-chat/myelin/internal/testdb"
)

// TestRoomHeroes: RoomHeroes keeps rooms.Heroes' rule (joined and
// invited members but self, in byte order, at most limit; the departed
// only when there are none; knocks never) on both databases, with user
// IDs that a locale collation orders otherwise ("@Zed" and "@_x" before
// "@alice" in bytes, after it under en_US).
func TestRoomHeroes(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db, err := Open(ctx, url, 4)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		const me = "@me:hs"
		rooms := map[string]map[string]string{
			"!big:hs": {me: "join", "@alice:hs": "join", "@Zed:hs": "join", "@_x:hs": "invite", "@bob:hs": "leave",
				"@Carl:hs": "ban", "@dave:hs": "join", "@eve:hs": "invite", "@frank:hs": "join", "@Yan:hs": "knock", "@ab:hs": "leave"},
			"!gone:hs":  {me: "join", "@b:hs": "leave", "@C:hs": "ban", "@d:hs": "knock"},
			"!many:hs":  {me: "join", "@g:hs": "leave", "@F:hs": "leave", "@e:hs": "ban", "@D:hs": "leave", "@c:hs": "leave", "@B:hs": "ban", "@a:hs": "leave"},
			"!alone:hs": {me: "join"},
			"!other:hs": {"@q:hs": "join"},
		}
		nid := 0
		for room, members := range rooms {
			for user, m := range members {
				nid++
				if _, err := db.w().exec(ctx, `INSERT INTO current_state (room_id, type, state_key, event_nid, membership) VALUES ($1, 'm.room.member', $2, $3, $4)`,
					room, user, nid, m); err != nil {
					t.Fatal(err)
				}
			}
		}
		// Other state must not count, even with a user ID as state key.
		if _, err := db.w().exec(ctx, `INSERT INTO current_state (room_id, type, state_key, event_nid) VALUES ('!alone:hs', 'm.room.power_levels', '@A:hs', 999)`); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			room string
			want []string
		}{
			{"!big:hs", []string{"@Zed:hs", "@_x:hs", "@alice:hs", "@dave:hs", "@eve:hs"}},
			{"!gone:hs", []string{"@C:hs", "@b:hs"}},
			{"!many:hs", []string{"@B:hs", "@D:hs", "@F:hs", "@a:hs", "@c:hs"}},
			{"!alone:hs", nil},
			{"!unknown:hs", nil},
		} {
			got, err := db.RoomHeroes(ctx, c.room, me, 5)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("%s: heroes %q, want %q", c.room, got, c.want)
			}
		}
		// Self is left out only when syncing as self: another viewer sees
		// me among the heroes.
		if got, err := db.RoomHeroes(ctx, "!alone:hs", "@q:hs", 5); err != nil || !slices.Equal(got, []string{me}) {
			t.Errorf("!alone:hs as another user: %q, %v", got, err)
		}
	})
}

// TestByteOrder: the dialect's byteOrder sorts text by bytes, as Go
// does, on a database that sorts by a locale (on PostgreSQL, a column of
// ICU's en_US collation; the test database itself is C.UTF-8, which needs
// no COLLATE and would hide a wrong one). The database's own collation is
// told apart by pgLocaleOrdered.
func TestByteOrder(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db, err := Open(ctx, url, 4)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		locale := ""
		if _, ok := db.dialect.(postgres); ok {
			// A column in a locale's order, whatever the test database's
			// own collation: the first such collation this server has.
			name, err := db.r().strings(ctx, `SELECT collname FROM pg_collation
				WHERE collname IN ('en-US-x-icu', 'und-x-icu', 'en_US.utf8', 'en_US.UTF-8') ORDER BY collname LIMIT 1`)
			if err != nil {
				t.Fatal(err)
			}
			if len(name) == 0 {
				t.Skip("this PostgreSQL has no locale collation to sort against")
			}
			locale = ` COLLATE "` + name[0] + `"`
			db.dialect = postgres{localeOrder: true}
		}
		got, err := db.r().strings(ctx, `SELECT s FROM (SELECT '@alice'`+locale+` AS s UNION ALL SELECT '@Zed' UNION ALL SELECT '@_x'
			UNION ALL SELECT '@bob' UNION ALL SELECT '@Ábel') v ORDER BY s`+db.dialect.byteOrder())
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"@alice", "@Zed", "@_x", "@bob", "@Ábel"}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("ORDER BY byteOrder: %q, want byte order %q", got, want)
		}
	})
	for _, c := range []struct {
		collate, provider string
		want              bool
	}{
		{"C", "c", false}, {"POSIX", "c", false}, {"C.UTF-8", "c", false}, {"C.utf8", "c", false}, {"C.UTF-8", "b", false},
		{"en_US.UTF-8", "c", true}, {"de_DE.utf8", "c", true}, {"C", "i", true}, {"und", "i", true},
	} {
		if got := pgLocaleOrdered(c.collate, c.provider); got != c.want {
			t.Errorf("pgLocaleOrdered(%q, %q) = %v, want %v", c.collate, c.provider, got, c.want)
		}
	}
}

// TestRoomHeroesPlan: on SQLite both queries of RoomHeroes walk the
// room's member rows in key order and stop at the limit, rather than
// sorting every member of the room (a "TEMP B-TREE" in the plan) or
// walking current_state_member, which is in user order across all rooms.
func TestRoomHeroesPlan(t *testing.T) {
	db, err := Open(context.Background(), t.TempDir()+"/s.db", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, ms := range []string{`'join', 'invite'`, `'leave', 'ban'`} {
		plan := strings.Join(explainSQLite(t, db, db.dialect.rewrite(heroesQuery(db.dialect, ms)), "!r:hs", "@me:hs", 5), "; ")
		if strings.Contains(plan, "TEMP B-TREE") || !strings.Contains(plan, "sqlite_autoindex_current_state_1 (room_id=? AND type=?)") {
			t.Errorf("%s: plan %q, want the primary key (room_id, type, state_key) in order", ms, plan)
		}
	}
}
