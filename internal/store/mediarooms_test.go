package store_test

import (
	"context"
	"slices"
	"testing"

	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// TestMediaRoomsStore: the rooms media was posted in are recorded once
// each (a batch repeating a pair, or a later batch, adds nothing) and
// listed per media.
func TestMediaRoomsStore(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db := open(t, url)
		if err := db.AddMediaRooms(ctx, []store.MediaRoom{
			{Origin: "a.test", MediaID: "m1", RoomID: "!r1:x"},
			{Origin: "a.test", MediaID: "m1", RoomID: "!r2:x"},
			{Origin: "a.test", MediaID: "m1", RoomID: "!r1:x"},
			{Origin: "b.test", MediaID: "m1", RoomID: "!r3:x"},
		}); err != nil {
			t.Fatal(err)
		}
		if err := db.AddMediaRooms(ctx, []store.MediaRoom{{Origin: "a.test", MediaID: "m1", RoomID: "!r2:x"}}); err != nil {
			t.Fatal(err)
		}
		got, err := db.MediaRoomsOf(ctx, "a.test", "m1")
		slices.Sort(got)
		if err != nil || !slices.Equal(got, []string{"!r1:x", "!r2:x"}) {
			t.Errorf("rooms of a.test/m1: %v, %v", got, err)
		}
		if got, err := db.MediaRoomsOf(ctx, "a.test", "none"); err != nil || len(got) != 0 {
			t.Errorf("rooms of unposted media: %v, %v", got, err)
		}
	})
}

// TestUserExtentStore: counts add up across writes, entities are kept
// once each, reads start at a day, and pruning drops the days before.
func TestUserExtentStore(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db := open(t, url)
		user := store.UserExtentEntity{Kind: "user", Entity: "@s:evil"}
		for _, batch := range [][]store.UserExtent{
			{{UserID: "@a:x", Day: "2026-12-01", Feed: "!f", Events: 2, Entities: []store.UserExtentEntity{user}},
				{UserID: "@a:x", Day: "2026-11-01", Feed: "!f", Events: 7}},
			{{UserID: "@a:x", Day: "2026-12-01", Feed: "!f", Events: 3, Invites: 1,
				Entities: []store.UserExtentEntity{user, {Kind: "server", Entity: "evil"}}}},
			{{UserID: "@a:x", Day: "2026-12-02", Feed: "!f", Entities: []store.UserExtentEntity{{Kind: "room", Entity: "!r"}}}},
		} {
			if err := db.AddUserExtent(ctx, batch); err != nil {
				t.Fatal(err)
			}
		}
		got, err := db.UserExtentSince(ctx, "2026-11-15")
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(got, func(a, b store.UserExtent) int {
			if a.Day < b.Day {
				return -1
			}
			return 1
		})
		if len(got) != 2 || got[0].Day != "2026-12-01" || got[0].Events != 5 || got[0].Invites != 1 || len(got[0].Entities) != 2 ||
			got[1].Day != "2026-12-02" || got[1].Events != 0 || len(got[1].Entities) != 1 {
			t.Fatalf("read %+v", got)
		}
		if err := db.PruneUserExtent(ctx, "2026-12-02"); err != nil {
			t.Fatal(err)
		}
		if got, err := db.UserExtentSince(ctx, "2000-01-01"); err != nil || len(got) != 1 || got[0].Day != "2026-12-02" {
			t.Fatalf("after pruning: %+v, %v", got, err)
		}
	})
}
