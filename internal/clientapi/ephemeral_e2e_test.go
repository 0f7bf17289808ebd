package clientapi_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestTyping: typing shows in the room members' /sync and stops on
// request or when its timeout passes; it is refused for rooms one is not
// in and for other users.
func TestTyping(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice, bob, eve := s.Register("alice", "password1234"), s.Register("bob", "password1234"), s.Register("eve", "password1234")
		room := syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if _, err := bob.JoinRoomByID(ctx, room); err != nil {
			t.Fatal(err)
		}
		since := testserver.SyncUntil(t, bob, "", "the room", func(r *mautrix.RespSync) bool { return r.Rooms.Join[room] != nil })
		typingIs := func(users ...id.UserID) func(*mautrix.RespSync) bool {
			return func(r *mautrix.RespSync) bool {
				evs := testserver.Ephemeral(r, room, event.EphemeralEventTyping)
				if len(evs) == 0 {
					return false
				}
				got := evs[len(evs)-1].Content.AsTyping().UserIDs
				if len(got) != len(users) {
					return false
				}
				for i := range got {
					if got[i] != users[i] {
						return false
					}
				}
				return true
			}
		}
		if _, err := alice.UserTyping(ctx, room, true, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		since = testserver.SyncUntil(t, bob, since, "alice typing", typingIs(alice.UserID))
		if _, err := alice.UserTyping(ctx, room, false, 0); err != nil {
			t.Fatal(err)
		}
		since = testserver.SyncUntil(t, bob, since, "alice stopping", typingIs())
		// A short timeout runs out by itself.
		if _, err := alice.UserTyping(ctx, room, true, 300*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		since = testserver.SyncUntil(t, bob, since, "alice typing again", typingIs(alice.UserID))
		testserver.SyncUntil(t, bob, since, "alice's typing time out", typingIs())

		st, body := s.Do(t, http.MethodPut, "/_matrix/client/v3/rooms/"+string(room)+"/typing/"+string(eve.UserID), eve.AccessToken,
			map[string]any{"typing": true, "timeout": 1000})
		testserver.WantStatus(t, "typing in a room eve is not in", st, body, http.StatusForbidden)
		st, body = s.Do(t, http.MethodPut, "/_matrix/client/v3/rooms/"+string(room)+"/typing/"+string(alice.UserID), bob.AccessToken,
			map[string]any{"typing": true, "timeout": 1000})
		testserver.WantStatus(t, "typing as someone else", st, body, http.StatusForbidden)
	})
}

// TestReceiptsAndUnreadCounts: messages count as unread for the other
// member until their read receipt; public receipts show in the room's
// /sync, private ones only to their owner; read markers land in room
// account data.
func TestReceiptsAndUnreadCounts(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice, bob := s.Register("alice", "password1234"), s.Register("bob", "password1234")
		room := syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if _, err := bob.JoinRoomByID(ctx, room); err != nil {
			t.Fatal(err)
		}
		aliceSince := testserver.SyncUntil(t, alice, "", "the room", func(r *mautrix.RespSync) bool { return r.Rooms.Join[room] != nil })
		bobSince := testserver.SyncUntil(t, bob, "", "the room", func(r *mautrix.RespSync) bool { return r.Rooms.Join[room] != nil })
		sySend(t, alice, room, "one")
		last := id.EventID(sySend(t, alice, room, "two"))
		unread := func(n int) func(*mautrix.RespSync) bool {
			return func(r *mautrix.RespSync) bool {
				j := r.Rooms.Join[room]
				return j != nil && j.UnreadNotifications != nil && j.UnreadNotifications.NotificationCount == n
			}
		}
		bobSince = testserver.SyncUntil(t, bob, bobSince, "two unread", unread(2))

		if err := bob.SendReceipt(ctx, room, last, event.ReceiptTypeReadPrivate, nil); err != nil {
			t.Fatal(err)
		}
		bobSince = testserver.SyncUntil(t, bob, bobSince, "no unread after his private receipt", unread(0))
		if err := bob.SetReadMarkers(ctx, room, map[string]any{"m.fully_read": last, "m.read": last}); err != nil {
			t.Fatal(err)
		}
		testserver.SyncUntil(t, bob, bobSince, "his fully-read marker", func(r *mautrix.RespSync) bool {
			j := r.Rooms.Join[room]
			if j == nil {
				return false
			}
			for _, ev := range j.AccountData.Events {
				if ev.Type.Type == "m.fully_read" {
					_ = ev.Content.ParseRaw(ev.Type)
					return ev.Content.AsFullyRead().EventID == last
				}
			}
			return false
		})
		sawPrivate := false
		testserver.SyncUntil(t, alice, aliceSince, "bob's public receipt", func(r *mautrix.RespSync) bool {
			for _, ev := range testserver.Ephemeral(r, room, event.EphemeralEventReceipt) {
				rc := *ev.Content.AsReceipt()
				if _, ok := rc[last][event.ReceiptTypeReadPrivate][bob.UserID]; ok {
					sawPrivate = true
				}
				if _, ok := rc[last][event.ReceiptTypeRead][bob.UserID]; ok {
					return true
				}
			}
			return false
		})
		if sawPrivate {
			t.Fatal("alice saw bob's private receipt")
		}
		st, body := s.Do(t, http.MethodPost, "/_matrix/client/v3/rooms/"+string(room)+"/receipt/m.read/$nope", bob.AccessToken, map[string]any{})
		testserver.WantStatus(t, "receipt for an unknown event", st, body, http.StatusNotFound)
		st, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/rooms/"+string(room)+"/receipt/m.bogus/"+string(last), bob.AccessToken, map[string]any{})
		testserver.WantStatus(t, "unknown receipt type", st, body, http.StatusBadRequest)
	})
}

// TestAccountDataIgnoreAndPresenceInSync: global account data and
// presence reach /sync, and an ignored user's messages and invites are
// left out of the ignorer's.
func TestAccountDataIgnoreAndPresenceInSync(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice, bob, carol := s.Register("alice", "password1234"), s.Register("bob", "password1234"), s.Register("carol", "password1234")
		room := syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		for _, c := range []*mautrix.Client{bob, carol} {
			if _, err := c.JoinRoomByID(ctx, room); err != nil {
				t.Fatal(err)
			}
		}
		since := testserver.SyncUntil(t, bob, "", "the room", func(r *mautrix.RespSync) bool { return r.Rooms.Join[room] != nil })
		if err := bob.SetAccountData(ctx, "org.example.settings", map[string]any{"theme": "dark"}); err != nil {
			t.Fatal(err)
		}
		if err := bob.SetAccountData(ctx, "m.ignored_user_list", map[string]any{"ignored_users": map[string]any{string(carol.UserID): map[string]any{}}}); err != nil {
			t.Fatal(err)
		}
		since = testserver.SyncUntil(t, bob, since, "his account data", func(r *mautrix.RespSync) bool {
			for _, ev := range r.AccountData.Events {
				if ev.Type.Type == "org.example.settings" {
					return true
				}
			}
			return false
		})
		sySend(t, carol, room, "ignore me")
		sySend(t, alice, room, "after carol")
		since = testserver.SyncUntil(t, bob, since, "alice's message", func(r *mautrix.RespSync) bool {
			j := r.Rooms.Join[room]
			if j == nil {
				return false
			}
			for _, ev := range j.Timeline.Events {
				if ev.Sender == carol.UserID && ev.Type == event.EventMessage {
					t.Fatalf("bob saw a message of carol, whom he ignores")
				}
			}
			return len(j.Timeline.Events) > 0
		})
		other := syCreate(t, carol, &mautrix.ReqCreateRoom{Preset: "private_chat"})
		if _, err := carol.InviteUser(ctx, other, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
			t.Fatal(err)
		}
		if err := alice.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceOnline, StatusMsg: "coding"}); err != nil {
			t.Fatal(err)
		}
		testserver.SyncUntil(t, bob, since, "alice's presence", func(r *mautrix.RespSync) bool {
			if _, ok := r.Rooms.Invite[other]; ok {
				t.Fatal("bob saw an invite from carol, whom he ignores")
			}
			for _, ev := range r.Presence.Events {
				if ev.Sender == alice.UserID {
					_ = ev.Content.ParseRaw(ev.Type)
					return ev.Content.AsPresence().StatusMessage == "coding"
				}
			}
			return false
		})
	})
}
