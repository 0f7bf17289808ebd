package push_test

import (
	"context"
	"fmt"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/push"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestBatchStraddlingAReceipt: a receipt that overtakes evaluation and
// falls inside the events of one batch (the worker lets events gather
// under load) leaves counted only the events after it, for the reader,
// and every event for the others; /notifications marks those at or
// below the receipt read.
func TestBatchStraddlingAReceipt(t *testing.T) {
	testserver.EachEngine(t, func(*config.Config) {}, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice, bob, carol := s.Register("alice", "pw-alice-1"), s.Register("bob", "pw-bob-1"), s.Register("carol", "pw-carol-1")
		room := publicRoom(t, bob, alice, carol)
		release := s.Push().HoldEvaluation()
		defer release()
		var sent []id.EventID
		for i := 1; i <= 4; i++ {
			sent = append(sent, send(t, bob, room, text(fmt.Sprint("message ", i))))
		}
		read, err := s.Engine().Event(ctx, string(sent[1]))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Push().MarkRead(ctx, string(alice.UserID), string(room), push.AllThreads, read.StreamPos); err != nil {
			t.Fatal(err)
		}
		release()
		waitThrough(t, s, sent[3])
		for _, c := range []struct {
			who  *mautrix.Client
			want int64
		}{{alice, 2}, {carol, 4}} {
			if main, _, err := s.Push().UnreadCounts(ctx, string(c.who.UserID), string(room)); err != nil || main.NotificationCount != c.want {
				t.Fatalf("%s: %+v %v, want %d unread", c.who.UserID, main, err, c.want)
			}
		}
		list := waitNotifications(t, s, alice, 4)
		for i, n := range list {
			// Newest first: the last two are unread.
			if eventIDOf(n) != string(sent[3-i]) || n["read"] != (i >= 2) {
				t.Fatalf("notification %d: %v, want %s read %v", i, n, sent[3-i], i >= 2)
			}
		}
	})
}
