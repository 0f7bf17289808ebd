package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// sliding_sync_room_meta rows filled by sliding sync only ever raise a bump stamp,
// and take a room type once.
func TestRoomListFill(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db := open(t, url)
		space := "m.space"
		if err := db.FillRoomList(ctx, map[string]store.RoomListEntry{"!a:x": {BumpStamp: 10}, "!b:x": {BumpStamp: 5, Typed: true, RoomType: &space}}); err != nil {
			t.Fatal(err)
		}
		if err := db.FillRoomList(ctx, map[string]store.RoomListEntry{"!a:x": {BumpStamp: 3, Typed: true}, "!b:x": {BumpStamp: 7, Typed: true}}); err != nil {
			t.Fatal(err)
		}
		got, err := db.RoomListEntries(ctx, []string{"!a:x", "!b:x", "!c:x"})
		if err != nil {
			t.Fatal(err)
		}
		if a := got["!a:x"]; a.BumpStamp != 10 || !a.Typed || a.RoomType != nil {
			t.Fatalf("!a: %+v", a)
		}
		if b := got["!b:x"]; b.BumpStamp != 7 || !b.Typed || b.RoomType == nil || *b.RoomType != space {
			t.Fatalf("!b: %+v", b)
		}
		if _, ok := got["!c:x"]; ok || len(got) != 2 {
			t.Fatalf("rows: %v", got)
		}
	})
}

// A sliding sync connection is written in parts (changed rooms, gone
// rooms), read back whole, replaced when started over, and expired.
func TestSlidingConnections(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db := open(t, url)
		now := time.Now().UnixMilli()
		w := store.SlidingConnWrite{UserID: "@u:x", DeviceID: "D", ConnID: "c", Fresh: true,
			SlidingConn: store.SlidingConn{Token: "t1", Seq: 1, Upto: 5, Extra: "{}", LastUsedTS: now},
			Rooms:       map[string]string{"!a:x": "a1", "!b:x": "b1"}}
		next := w
		next.Fresh, next.Seq, next.Rooms, next.Gone = false, 2, map[string]string{"!a:x": "a2"}, []string{"!b:x"}
		if err := db.WriteSlidingConnections(ctx, []store.SlidingConnWrite{w, next}); err != nil {
			t.Fatal(err)
		}
		c, rooms, err := db.SlidingConnection(ctx, "@u:x", "D", "c")
		if err != nil || c.Token != "t1" || c.Seq != 2 || c.Upto != 5 || len(rooms) != 1 || rooms["!a:x"] != "a2" {
			t.Fatalf("read back: %+v %v %v", c, rooms, err)
		}
		fresh := store.SlidingConnWrite{UserID: "@u:x", DeviceID: "D", ConnID: "c", Fresh: true,
			SlidingConn: store.SlidingConn{Token: "t2", Seq: 1, Extra: "{}", LastUsedTS: now - 10}, Rooms: map[string]string{"!c:x": "c1"}}
		if err := db.WriteSlidingConnections(ctx, []store.SlidingConnWrite{fresh}); err != nil {
			t.Fatal(err)
		}
		if c, rooms, err = db.SlidingConnection(ctx, "@u:x", "D", "c"); err != nil || c.Token != "t2" || len(rooms) != 1 || rooms["!c:x"] != "c1" {
			t.Fatalf("started over: %+v %v %v", c, rooms, err)
		}
		if err := db.ExpireSlidingConnections(ctx, now-5); err != nil {
			t.Fatal(err)
		}
		if _, _, err := db.SlidingConnection(ctx, "@u:x", "D", "c"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("expired connection: %v", err)
		}
	})
}

// TestDeleteDeviceDeletesSlidingConnections: a device's sliding sync
// connections go with its end-to-end data (a device deleted or logged
// out), every device's with a deactivated user's; other devices' and
// other users' stay.
func TestDeleteDeviceDeletesSlidingConnections(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db := open(t, url)
		now := time.Now().UnixMilli()
		var ws []store.SlidingConnWrite
		for i, k := range [][3]string{{"@u:x", "D1", "room-list"}, {"@u:x", "D1", "encryption"}, {"@u:x", "D2", "room-list"}, {"@v:x", "D1", "room-list"}} {
			ws = append(ws, store.SlidingConnWrite{UserID: k[0], DeviceID: k[1], ConnID: k[2], Fresh: true,
				SlidingConn: store.SlidingConn{Token: fmt.Sprint("t", i), Seq: 1, Extra: "{}", LastUsedTS: now},
				Rooms:       map[string]string{"!a:x": "a"}})
		}
		if err := db.WriteSlidingConnections(ctx, ws); err != nil {
			t.Fatal(err)
		}
		stored := func(user, device, conn string) bool {
			t.Helper()
			_, rooms, err := db.SlidingConnection(ctx, user, device, conn)
			if errors.Is(err, store.ErrNotFound) {
				return false
			}
			if err != nil || len(rooms) != 1 {
				t.Fatalf("%s %s %s: %v %v", user, device, conn, rooms, err)
			}
			return true
		}
		if err := db.DeleteDeviceE2E(ctx, "@u:x", []string{"D1"}, 1); err != nil {
			t.Fatal(err)
		}
		if stored("@u:x", "D1", "room-list") || stored("@u:x", "D1", "encryption") {
			t.Fatal("a deleted device's connections kept")
		}
		if !stored("@u:x", "D2", "room-list") || !stored("@v:x", "D1", "room-list") {
			t.Fatal("another device's connections deleted")
		}
		if err := db.DeleteDeviceE2E(ctx, "@u:x", nil, 2); err != nil {
			t.Fatal(err)
		}
		if stored("@u:x", "D2", "room-list") || !stored("@v:x", "D1", "room-list") {
			t.Fatal("all devices of a user: wrong connections deleted")
		}
		// Their rooms went with them: a connection written again under
		// a deleted token starts with none.
		again := ws[0]
		again.Fresh, again.Rooms = false, nil
		if err := db.WriteSlidingConnections(ctx, []store.SlidingConnWrite{again}); err != nil {
			t.Fatal(err)
		}
		if _, rooms, err := db.SlidingConnection(ctx, "@u:x", "D1", "room-list"); err != nil || len(rooms) != 0 {
			t.Fatalf("rooms of a deleted connection kept: %v %v", rooms, err)
		}
	})
}
