package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/myelin-chat/myelin/internal/testdb"
)

// RoomAccountData reads a user's entries of the given rooms up to a
// position: no other user's, no global ones, none of other rooms or
// later positions, across more rooms than one query binds.
func TestRoomAccountData(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db := open(t, url)
		put := func(user, room, typ string, pos int64) {
			t.Helper()
			if err := db.PutAccountData(ctx, user, room, typ, `{}`, pos); err != nil {
				t.Fatal(err)
			}
		}
		put("@a:x", "", "m.direct", 1)
		put("@a:x", "!r1:x", "m.tag", 2)
		put("@a:x", "!r1:x", "m.fully_read", 3)
		put("@a:x", "!r2:x", "m.tag", 9)
		put("@b:x", "!r1:x", "m.tag", 4)
		var rooms []string
		for i := range 600 {
			rooms = append(rooms, fmt.Sprintf("!n%d:x", i))
		}
		put("@a:x", rooms[599], "m.tag", 5)
		got, err := db.RoomAccountData(ctx, "@a:x", append([]string{"!r1:x", "!r2:x"}, rooms...), 5)
		if err != nil {
			t.Fatal(err)
		}
		var seen []string
		for _, a := range got {
			seen = append(seen, a.RoomID+" "+a.Type)
		}
		want := []string{"!r1:x m.tag", "!r1:x m.fully_read", rooms[599] + " m.tag"}
		if fmt.Sprint(seen) != fmt.Sprint(want) {
			t.Fatalf("got %v, want %v", seen, want)
		}
	})
}
