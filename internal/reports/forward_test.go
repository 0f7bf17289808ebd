package reports_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/myelin-chat/myelin/internal/reports"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/roomtest"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// TestModerators: a room's moderators, for forwarding, are its joined
// local users at or above the redact level and above users_default;
// a room that lets everyone redact has none but its privileged users.
func TestModerators(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		env := roomtest.New(t, dbURL, "12")
		engine := env.Engine
		s := reports.New(reports.Options{ServerName: "hs1.test", Store: env.DB, Rooms: engine, Users: users{}})
		roomID, err := engine.CreateRoom(ctx, rooms.CreateRequest{Creator: alice, Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		const carol = "@carol:hs1.test"
		for _, u := range []string{bob, carol} {
			if _, err := engine.SetMembership(ctx, rooms.MembershipRequest{Sender: u, RoomID: roomID, Target: u, Membership: "join"}); err != nil {
				t.Fatal(err)
			}
		}
		setPL := func(pl map[string]any) {
			t.Helper()
			empty := ""
			if _, err := engine.Send(ctx, rooms.SendRequest{RoomID: roomID, Sender: alice, Type: "m.room.power_levels", StateKey: &empty, Content: pl}); err != nil {
				t.Fatal(err)
			}
		}
		check := func(what string, want []string, exclude ...string) {
			t.Helper()
			got, err := s.Moderators(ctx, roomID, exclude...)
			if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("%s: %v %v, want %v", what, got, err, want)
			}
		}
		// bob at 50 moderates; a remote user and a local user who is not
		// joined do not, whatever their level.
		setPL(map[string]any{"users": map[string]any{bob: 50, "@mod:hs2.test": 100, "@dave:hs1.test": 100}})
		check("default levels", []string{alice, bob})
		check("without the reporter", []string{bob}, alice)
		// bob at 40 is below redact (50).
		setPL(map[string]any{"users": map[string]any{bob: 40, carol: 50}})
		check("bob below redact", []string{alice, carol})
		// Everyone may redact: only those above users_default count.
		setPL(map[string]any{"redact": 0, "users_default": 10, "users": map[string]any{bob: 10, carol: 20}})
		check("redact 0", []string{alice, carol})
	})
}
