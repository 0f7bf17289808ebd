package store_test

import (
	"context"
	"testing"

	"github.com/myelin-chat/myelin/internal/testdb"
)

// TestRoomForgotten: the one-room question agrees with the list, per user
// and room, and a rejoin (UnforgetRoom) clears it.
func TestRoomForgotten(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db := open(t, url)
		const u, v, room, other = "@u:hs", "@v:hs", "!r:hs", "!o:hs"
		if err := db.ForgetRoom(ctx, u, room); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			user, room string
			want       bool
		}{{u, room, true}, {u, other, false}, {v, room, false}} {
			if got, err := db.RoomForgotten(ctx, c.user, c.room); err != nil || got != c.want {
				t.Fatalf("RoomForgotten(%s, %s) = %v, %v; want %v", c.user, c.room, got, err, c.want)
			}
		}
		if err := db.UnforgetRoom(ctx, u, room); err != nil {
			t.Fatal(err)
		}
		if got, err := db.RoomForgotten(ctx, u, room); err != nil || got {
			t.Fatalf("after UnforgetRoom: %v, %v", got, err)
		}
	})
}
