package directory

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// TestListing: a room's directory entry is off until set, an unknown
// room answers M_NOT_FOUND, and only admins and joined members with the
// canonical alias power may edit the entry.
func TestListing(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		f := newFixture(t, dbURL)
		roomID := f.room(t, rooms.CreateRequest{Preset: "public_chat"})
		const member, outsider = "@member:hs1.test", "@outsider:hs1.test"
		key := member
		if _, err := f.engine.Send(ctx, rooms.SendRequest{RoomID: roomID, Sender: member, Type: "m.room.member", StateKey: &key,
			Content: json.RawMessage(`{"membership":"join"}`)}); err != nil {
			t.Fatal(err)
		}

		if p, err := f.svc.Published(ctx, roomID); err != nil || p {
			t.Fatalf("new room published: %v %v", p, err)
		}
		if err := f.svc.SetPublished(ctx, roomID, true); err != nil {
			t.Fatal(err)
		}
		if p, err := f.svc.Published(ctx, roomID); err != nil || !p {
			t.Fatalf("after publishing: %v %v", p, err)
		}
		for _, err := range []error{f.svc.SetPublished(ctx, "!none:hs1.test", true), func() error {
			_, err := f.svc.Published(ctx, "!none:hs1.test")
			return err
		}()} {
			if e, ok := mxerr.As(err); !ok || e.Code != "M_NOT_FOUND" {
				t.Fatalf("unknown room: %v", err)
			}
		}

		for _, c := range []struct {
			user    string
			admin   bool
			roomID  string
			mayEdit bool
		}{
			{alice, false, roomID, true}, {member, false, roomID, false}, {outsider, false, roomID, false},
			{outsider, true, roomID, true}, {alice, false, "!none:hs1.test", false},
		} {
			if ok, err := f.svc.MayEditListing(ctx, c.user, c.admin, c.roomID); err != nil || ok != c.mayEdit {
				t.Errorf("%s admin=%v in %s: %v %v, want %v", c.user, c.admin, c.roomID, ok, err, c.mayEdit)
			}
		}
	})
}
