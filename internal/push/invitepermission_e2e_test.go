package push_test

import (
	"context"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestHiddenInvitesDoNotNotify: an invite the invitee's MSC4155 lists
// ignore is never shown, so it makes no notification (invite_for_me);
// an allowed invite still does.
func TestHiddenInvitesDoNotNotify(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw-alice")
		bob := s.Register("bob", "pw-bob")
		carol := s.Register("carol", "pw-carol")
		bobID := id.UserID(s.UserID("bob"))
		if err := bob.SetAccountData(ctx, "org.matrix.msc4155.invite_permission_config",
			map[string]any{"ignored_users": []string{s.UserID("alice")}}); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Invite: []id.UserID{bobID}}); err != nil {
			t.Fatal(err)
		}
		fromCarol, err := carol.CreateRoom(ctx, &mautrix.ReqCreateRoom{Invite: []id.UserID{bobID}})
		if err != nil {
			t.Fatal(err)
		}
		// Events are evaluated in order: once carol's invite notifies,
		// alice's earlier one has been evaluated too.
		list := waitNotifications(t, s, bob, 1)
		if got := list[0]["room_id"]; got != fromCarol.RoomID.String() {
			t.Fatalf("bob's notification is of room %v, want carol's %s", got, fromCarol.RoomID)
		}
	})
}
