package clientapi_test

import (
	"context"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestSlidingSyncHidesBlockedInvites: an invite /sync must not serve
// (one that arrived before its user blocked invites, spec v1.18 "Invite
// permission"; one from an ignored user) is neither sent by sliding sync
// nor counted in its lists, which would tell the client it exists;
// lifting the block shows it.
func TestSlidingSyncHidesBlockedInvites(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice, bob, carol := s.Register("alice", "pw-alice"), s.Register("bob", "pw-bob"), s.Register("carol", "pw-carol")
		bobID := id.UserID(s.UserID("bob"))
		joined, err := bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{})
		if err != nil {
			t.Fatal(err)
		}
		early, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Invite: []id.UserID{bobID}})
		if err != nil {
			t.Fatal(err)
		}
		setAccountData(t, bob, "m.ignored_user_list", map[string]any{"ignored_users": map[string]any{s.UserID("carol"): map[string]any{}}})
		ignored, err := carol.CreateRoom(ctx, &mautrix.ReqCreateRoom{Invite: []id.UserID{bobID}})
		if err != nil {
			t.Fatal(err)
		}
		list := func() (int, map[string]*ssRoom) {
			resp := ssOK(t, s, bob, "", 0, roomList(0, 20))
			return resp.Lists["all_rooms"].Count, resp.Rooms
		}
		if n, rooms := list(); n != 2 || rooms[early.RoomID.String()] == nil {
			t.Fatalf("before the block: count %d, rooms %v; want the joined room and alice's invite", n, rooms)
		}
		setAccountData(t, bob, "m.invite_permission_config", map[string]any{"default_action": "block"})
		n, rooms := list()
		if rooms[early.RoomID.String()] != nil || rooms[ignored.RoomID.String()] != nil || n != 1 || rooms[joined.RoomID.String()] == nil {
			t.Errorf("while blocked: count %d, rooms %v; want only the joined room", n, rooms)
		}
		setAccountData(t, bob, "m.invite_permission_config", map[string]any{})
		if n, rooms := list(); n != 2 || rooms[early.RoomID.String()] == nil || rooms[ignored.RoomID.String()] != nil {
			t.Errorf("after the block: count %d, rooms %v; want alice's invite back, carol's still hidden", n, rooms)
		}
	})
}
