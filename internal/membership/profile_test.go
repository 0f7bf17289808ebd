package membership

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// TestProfileChanged: a new display name reaches every room the user is
// joined to, not rooms they were only invited to; other profile fields
// send nothing.
func TestProfileChanged(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		f := newFixture(t, dbURL, false)
		a, b, c := f.room(t, "public_chat"), f.room(t, "public_chat"), f.room(t, "private_chat")
		// Joined with a per-room name, which the new global one replaces
		// (the same content again would be no change, and no event).
		perRoom := Content{"displayname": json.RawMessage(`"Bob here"`)}
		for _, id := range []string{a, b} {
			if err := f.svc.Join(ctx, bob, id, nil, perRoom); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.svc.Invite(ctx, InviteRequest{Sender: alice, RoomID: c, Target: bob}); err != nil {
			t.Fatal(err)
		}
		memberEvent := func(roomID string) string {
			st, err := f.engine.CurrentState(ctx, roomID)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := f.engine.StateEvent(ctx, st, "m.room.member", bob)
			if err != nil || ev == nil {
				t.Fatalf("bob's member event in %s: %v", roomID, err)
			}
			return ev.EventID()
		}
		before := map[string]string{a: memberEvent(a), b: memberEvent(b), c: memberEvent(c)}
		if err := f.svc.ProfileChanged(ctx, "bob", "m.tz"); err != nil {
			t.Fatal(err)
		}
		for id, ev := range before {
			if memberEvent(id) != ev {
				t.Fatalf("m.tz changed bob's member event in %s", id)
			}
		}
		if err := f.svc.ProfileChanged(ctx, "bob", "displayname"); err != nil {
			t.Fatal(err)
		}
		for id, ev := range before {
			if changed := memberEvent(id) != ev; changed != (id != c) {
				t.Fatalf("room %s: member event changed %v", id, changed)
			}
		}
		st, _ := f.engine.CurrentState(ctx, a)
		ev, _ := f.engine.StateEvent(ctx, st, "m.room.member", bob)
		if rooms.ContentString(ev.Content(), "displayname") != "bob D." {
			t.Fatalf("content %s", ev.Content())
		}
	})
}

// TestMutualRooms pages the rooms two users share.
func TestMutualRooms(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		f := newFixture(t, dbURL, false)
		var shared []string
		for range 3 {
			id := f.room(t, "public_chat")
			if err := f.svc.Join(ctx, bob, id, nil, nil); err != nil {
				t.Fatal(err)
			}
			shared = append(shared, id)
		}
		f.room(t, "public_chat") // alice's alone
		slices.Sort(shared)
		ids, count, err := f.svc.MutualRooms(ctx, alice, bob, "", 2)
		if err != nil || count != 3 || !slices.Equal(ids, shared[:2]) {
			t.Fatalf("first page %v %d %v; want %v of 3", ids, count, err, shared[:2])
		}
		ids, count, err = f.svc.MutualRooms(ctx, bob, alice, ids[1], 2)
		if err != nil || count != 3 || !slices.Equal(ids, shared[2:]) {
			t.Fatalf("second page %v %d %v; want %v", ids, count, err, shared[2:])
		}
	})
}
