package push_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/pushrules"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/push"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// notifications is GET /notifications for a client.
func notifications(t *testing.T, s *testserver.Server, c *mautrix.Client, query string) (list []map[string]any, next string) {
	t.Helper()
	status, body := s.Do(t, http.MethodGet, "/_matrix/client/v3/notifications?"+query, c.AccessToken, nil)
	testserver.WantStatus(t, "notifications", status, body, http.StatusOK)
	for _, n := range body["notifications"].([]any) {
		list = append(list, n.(map[string]any))
	}
	next, _ = body["next_token"].(string)
	return list, next
}

// waitNotifications polls until the client has n notifications:
// evaluation runs behind the request that sent the event.
func waitNotifications(t *testing.T, s *testserver.Server, c *mautrix.Client, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		list, _ := notifications(t, s, c, "limit=100")
		if len(list) >= n || time.Now().After(deadline) {
			if len(list) != n {
				t.Fatalf("%s has %d notifications, want %d: %v", c.UserID, len(list), n, list)
			}
			return list
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func send(t *testing.T, c *mautrix.Client, roomID id.RoomID, content map[string]any) id.EventID {
	t.Helper()
	resp, err := c.SendMessageEvent(context.Background(), roomID, event.EventMessage, content)
	if err != nil {
		t.Fatal(err)
	}
	return resp.EventID
}

func text(body string) map[string]any { return map[string]any{"msgtype": "m.text", "body": body} }

func highlighted(n map[string]any) bool {
	for _, a := range n["actions"].([]any) {
		if m, ok := a.(map[string]any); ok && m["set_tweak"] == "highlight" && m["value"] != false {
			return true
		}
	}
	return false
}

func eventIDOf(n map[string]any) string { return n["event"].(map[string]any)["event_id"].(string) }

func join(t *testing.T, roomID id.RoomID, cs ...*mautrix.Client) {
	t.Helper()
	for _, c := range cs {
		if _, err := c.JoinRoomByID(context.Background(), roomID); err != nil {
			t.Fatal(err)
		}
	}
}

// publicRoom is a public room of owner's that members have joined.
func publicRoom(t *testing.T, owner *mautrix.Client, members ...*mautrix.Client) id.RoomID {
	t.Helper()
	room, err := owner.CreateRoom(context.Background(), &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	join(t, room.RoomID, members...)
	return room.RoomID
}

func TestEvaluation(t *testing.T) {
	testserver.EachEngine(t, func(c *config.Config) { c.Rooms.ThreadSubscriptions = true }, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice, bob, carol := s.Register("alice", "pw-alice-1"), s.Register("bob", "pw-bob-1"), s.Register("carol", "pw-carol-1")
		group, err := bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		join(t, group.RoomID, alice, carol)

		plain := send(t, bob, group.RoomID, text("hello all"))
		mention := send(t, bob, group.RoomID, map[string]any{"msgtype": "m.text", "body": "alice: look",
			"m.mentions": map[string]any{"user_ids": []string{string(alice.UserID)}}})
		if err := alice.PutPushRule(ctx, "global", pushrules.ContentRule, "cake", &mautrix.ReqPutPushRule{Pattern: "cake",
			Actions: []*pushrules.PushAction{{Action: pushrules.ActionNotify}, {Action: pushrules.ActionSetTweak, Tweak: pushrules.TweakHighlight}}}); err != nil {
			t.Fatal(err)
		}
		keyword := send(t, bob, group.RoomID, text("who wants Cake?"))
		send(t, bob, group.RoomID, map[string]any{"msgtype": "m.notice", "body": "a bot says cake"}) // suppress_notices wins
		list := waitNotifications(t, s, alice, 3)
		want := []struct {
			id        id.EventID
			highlight bool
		}{{keyword, true}, {mention, true}, {plain, false}}
		for i, w := range want {
			if eventIDOf(list[i]) != string(w.id) || highlighted(list[i]) != w.highlight || list[i]["room_id"] != string(group.RoomID) || list[i]["read"] != false {
				t.Fatalf("notification %d: %v, want %s highlight %v", i, list[i], w.id, w.highlight)
			}
		}
		// The sender is never notified of their own events; carol got the
		// plain message and the keyword one is not hers.
		waitNotifications(t, s, carol, 3)
		if l, _ := notifications(t, s, bob, ""); len(l) != 0 {
			t.Fatalf("bob notified of his own events: %v", l)
		}

		// Paging and only=highlight.
		page, next := notifications(t, s, alice, "limit=2")
		if len(page) != 2 || next == "" {
			t.Fatalf("page 1: %v %q", page, next)
		}
		page, next = notifications(t, s, alice, "limit=2&from="+url.QueryEscape(next))
		if len(page) != 1 || eventIDOf(page[0]) != string(plain) || next != "" {
			t.Fatalf("page 2: %v %q", page, next)
		}
		page, _ = notifications(t, s, alice, "only=highlight")
		if len(page) != 2 || !highlighted(page[0]) || !highlighted(page[1]) {
			t.Fatalf("only=highlight: %v", page)
		}

		// A one-to-one room notifies with a sound.
		dm, err := bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", Invite: []id.UserID{alice.UserID}, IsDirect: true})
		if err != nil {
			t.Fatal(err)
		}
		list = waitNotifications(t, s, alice, 4) // the invite (invite_for_me)
		if list[0]["event"].(map[string]any)["type"] != "m.room.member" {
			t.Fatalf("invite notification: %v", list[0])
		}
		join(t, dm.RoomID, alice)
		direct := send(t, bob, dm.RoomID, text("just us"))
		list = waitNotifications(t, s, alice, 5)
		if eventIDOf(list[0]) != string(direct) || highlighted(list[0]) || fmt.Sprint(list[0]["actions"]) != "[notify map[set_tweak:sound value:default]]" {
			t.Fatalf("one-to-one: %v", list[0])
		}

		// Counts, per thread, and read receipts clearing them.
		root := send(t, bob, group.RoomID, text("a thread"))
		// A reply notifies a user who follows the thread (MSC4306's
		// postcontent rules).
		status, body := s.Do(t, http.MethodPut, "/_matrix/client/unstable/io.element.msc4306/rooms/"+string(group.RoomID)+"/thread/"+string(root)+"/subscription",
			alice.AccessToken, map[string]any{})
		testserver.WantStatus(t, "subscribe to the thread", status, body, http.StatusOK)
		send(t, bob, group.RoomID, map[string]any{"msgtype": "m.text", "body": "in thread",
			"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": string(root)}})
		waitNotifications(t, s, alice, 7)
		main, threads, err := s.Push().UnreadCounts(ctx, string(alice.UserID), string(group.RoomID))
		if err != nil {
			t.Fatal(err)
		}
		if main != (push.Counts{NotificationCount: 4, HighlightCount: 2}) || threads[string(root)] != (push.Counts{NotificationCount: 1}) || len(threads) != 1 {
			t.Fatalf("counts: %+v %+v", main, threads)
		}
		changed, err := s.Push().CountsChanged(ctx, string(alice.UserID), 0, s.Engine().Stream().Current())
		if err != nil || len(changed) != 2 {
			t.Fatalf("counts changed: %v %v", changed, err)
		}
		rootEv, err := s.Engine().Event(ctx, string(root))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Push().MarkRead(ctx, string(alice.UserID), string(group.RoomID), push.MainThread, rootEv.StreamPos); err != nil {
			t.Fatal(err)
		}
		main, threads, _ = s.Push().UnreadCounts(ctx, string(alice.UserID), string(group.RoomID))
		if main != (push.Counts{}) || threads[string(root)].NotificationCount != 1 {
			t.Fatalf("after main receipt: %+v %+v", main, threads)
		}
		if err := s.Push().MarkRead(ctx, string(alice.UserID), string(group.RoomID), push.AllThreads, s.Engine().Stream().Current()); err != nil {
			t.Fatal(err)
		}
		if _, threads, _ = s.Push().UnreadCounts(ctx, string(alice.UserID), string(group.RoomID)); len(threads) != 0 {
			t.Fatalf("after unthreaded receipt: %+v", threads)
		}
		if list, _ := notifications(t, s, alice, "limit=1"); list[0]["read"] != true {
			t.Fatalf("read flag: %v", list[0])
		}

		// Ignored users notify nobody who ignores them.
		if err := alice.SetAccountData(ctx, "m.ignored_user_list", map[string]any{"ignored_users": map[string]any{string(carol.UserID): map[string]any{}}}); err != nil {
			t.Fatal(err)
		}
		send(t, carol, group.RoomID, map[string]any{"msgtype": "m.text", "body": "alice!",
			"m.mentions": map[string]any{"user_ids": []string{string(alice.UserID)}}})
		afterCarol := send(t, bob, group.RoomID, text("after carol"))
		list = waitNotifications(t, s, alice, 8)
		if list[0]["event"].(map[string]any)["sender"] != string(bob.UserID) {
			t.Fatalf("ignored sender notified: %v", list[0])
		}
		// Counted on top of the counts read (and cached) after the receipt;
		// /notifications can list it a moment before the cache has it.
		waitThrough(t, s, afterCarol)
		if main, threads, _ = s.Push().UnreadCounts(ctx, string(alice.UserID), string(group.RoomID)); main != (push.Counts{NotificationCount: 1}) || len(threads) != 0 {
			t.Fatalf("after a new message: %+v %+v", main, threads)
		}
	})
}

// TestRoomMention checks sender_notification_permission: @room from a
// member without the power to notify the room does not highlight.
func TestRoomMention(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice, bob, carol := s.Register("alice", "pw-alice-1"), s.Register("bob", "pw-bob-1"), s.Register("carol", "pw-carol-1")
		room, err := bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		join(t, room.RoomID, alice, carol)
		atRoom := map[string]any{"msgtype": "m.text", "body": "@room hi", "m.mentions": map[string]any{"room": true}}
		fromCarol := send(t, carol, room.RoomID, atRoom)
		fromBob := send(t, bob, room.RoomID, atRoom)
		list := waitNotifications(t, s, alice, 2)
		if eventIDOf(list[0]) != string(fromBob) || !highlighted(list[0]) || eventIDOf(list[1]) != string(fromCarol) || highlighted(list[1]) {
			t.Fatalf("room mentions: %v", list)
		}
	})
}

// TestThroughCoversCounts checks the gate /sync waits on: once Through
// reaches an event, its notifications are counted, so a /sync woken then
// answers with the event and its counts together.
func TestThroughCoversCounts(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice, bob, carol := s.Register("alice", "pw-alice-1"), s.Register("bob", "pw-bob-1"), s.Register("carol", "pw-carol-1")
		room := publicRoom(t, bob, alice, carol)
		for i := 1; i <= 3; i++ {
			waitThrough(t, s, send(t, bob, room, text(fmt.Sprint("message ", i))))
			for _, c := range []*mautrix.Client{alice, carol} {
				if main, _, err := s.Push().UnreadCounts(ctx, string(c.UserID), string(room)); err != nil || main.NotificationCount != int64(i) {
					t.Fatalf("%s after message %d: %+v %v", c.UserID, i, main, err)
				}
			}
		}
	})
}

// waitThrough waits until push has processed an event (push.Through).
func waitThrough(t *testing.T, s *testserver.Server, eventID id.EventID) {
	t.Helper()
	ev, err := s.Engine().Event(context.Background(), string(eventID))
	if err != nil {
		t.Fatal(err)
	}
	waitPushed(t, s.Push(), ev.StreamPos)
}

// TestPruneExpiresCounts: notifications past their keeping time go, and
// the counts (cached ones too) stop counting those that were unread.
func TestPruneExpiresCounts(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice, bob := s.Register("alice", "pw-alice-1"), s.Register("bob", "pw-bob-1")
		room := publicRoom(t, bob, alice)
		send(t, bob, room, text("one"))
		waitThrough(t, s, send(t, bob, room, text("two")))
		if main, _, err := s.Push().UnreadCounts(ctx, string(alice.UserID), string(room)); err != nil || main.NotificationCount != 2 {
			t.Fatalf("before pruning: %+v %v", main, err)
		}
		// A day on, unread notifications are kept.
		if n, err := s.Push().Prune(ctx, time.Now().Add(25*time.Hour)); err != nil || n != 0 {
			t.Fatalf("pruned %d a day on (%v), want 0", n, err)
		}
		// A month on, they expire.
		if n, err := s.Push().Prune(ctx, time.Now().Add(31*24*time.Hour)); err != nil || n != 2 {
			t.Fatalf("pruned %d a month on (%v), want 2", n, err)
		}
		if main, _, err := s.Push().UnreadCounts(ctx, string(alice.UserID), string(room)); err != nil || main.NotificationCount != 0 {
			t.Fatalf("after pruning: %+v %v", main, err)
		}
		if list, _ := notifications(t, s, alice, "limit=10"); len(list) != 0 {
			t.Fatalf("notifications after pruning: %v", list)
		}
	})
}
