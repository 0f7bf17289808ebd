package push_test

import (
	"context"
	"testing"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// An event notifies the users joined when it was sent, however far the
// worker runs behind it (Synapse computes push actions for the event's
// own state): not one who joined after it, and one who left after it
// all the same. The worker's unread counts follow, and so does
// room_member_count (the one-to-one rule's sound).
func TestMembersAtTheEvent(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice, bob, carol := s.Register("alice", "pw-alice-1"), s.Register("bob", "pw-bob-1"), s.Register("carol", "pw-carol-1")
		dave := s.Register("dave", "pw-dave-1")
		room := publicRoom(t, alice, bob)

		release := s.Push().HoldEvaluation()
		t.Cleanup(release)
		before := send(t, alice, room, text("before carol came and bob went"))
		join(t, room, carol, dave)
		if _, err := bob.LeaveRoom(ctx, room); err != nil {
			t.Fatal(err)
		}
		release()
		after := send(t, alice, room, text("after"))

		// Events are evaluated in order: carol's notification of the
		// second message means the first one was evaluated too.
		list := waitNotifications(t, s, carol, 1)
		if eventIDOf(list[0]) != string(after) {
			t.Fatalf("carol's notifications: %v, want only %s", list, after)
		}
		c, _, err := s.Push().UnreadCounts(ctx, carol.UserID.String(), room.String())
		if err != nil {
			t.Fatal(err)
		}
		if c.NotificationCount != 1 {
			t.Fatalf("carol's unread count %d, want 1 (the message sent before she joined counts none)", c.NotificationCount)
		}
		list = waitNotifications(t, s, bob, 1)
		if eventIDOf(list[0]) != string(before) {
			t.Fatalf("bob's notifications: %v, want only %s", list, before)
		}
		// Two were in the room when it was sent, three when evaluated.
		if !withSound(list[0]) {
			t.Fatalf("bob's notification of a message in a room of two: %v, want the one-to-one rule's sound", list[0])
		}
	})
}

func withSound(n map[string]any) bool {
	for _, a := range n["actions"].([]any) {
		if m, ok := a.(map[string]any); ok && m["set_tweak"] == "sound" {
			return true
		}
	}
	return false
}
