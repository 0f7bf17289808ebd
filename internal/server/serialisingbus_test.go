package server_test

import (
	"context"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/server"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestListenersOnSerialisingBus runs two federating servers on a bus that
// hands each listener a JSON copy of every change, as a bus between
// processes would (the NATS JetStream case). Every kind of change
// must still wake the /sync of the users it concerns, on this server and
// over federation: a listener that relied on sharing memory with the
// publisher would not wake it, and the long-poll would end empty.
func TestListenersOnSerialisingBus(t *testing.T) {
	server.UseSerialisingBus(t)
	ctx := context.Background()
	net := testserver.StartNetwork(t, "sqlite", 2, func(_ int, c *config.Config) { c.Presence.Enabled = true })
	hs1, hs2 := net.Servers[0], net.Servers[1]
	alice, carol := hs1.Register("alice", "password1234"), hs1.Register("carol", "password1234")
	bob := hs2.Register("bob", "password1234")

	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*mautrix.Client{carol, bob} {
		if _, err := c.JoinRoom(ctx, room.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{hs1.Config.ServerName}}); err != nil {
			t.Fatalf("%s joins: %v", c.UserID, err)
		}
	}
	carolSince := testserver.SyncUntil(t, carol, "", "the room", func(r *mautrix.RespSync) bool { return r.Rooms.Join[room.RoomID] != nil })
	bobSince := testserver.SyncUntil(t, bob, "", "the room", func(r *mautrix.RespSync) bool {
		j := r.Rooms.Join[room.RoomID]
		return j != nil && hasMember(j.State.Events, carol.UserID) || j != nil && hasMember(j.Timeline.Events, carol.UserID)
	})

	// A message: the event itself (rooms.TopicEvent) and carol's
	// notification count (push.CountsChanged).
	var msg id.EventID
	carolSince = wokenBy(t, carol, carolSince, "a message and its notification count", func() {
		resp, err := alice.SendText(ctx, room.RoomID, "hello")
		if err != nil {
			t.Fatal(err)
		}
		msg = resp.EventID
	}, func(r *mautrix.RespSync) bool {
		j := r.Rooms.Join[room.RoomID]
		return j != nil && j.UnreadNotifications != nil && j.UnreadNotifications.NotificationCount > 0
	})
	bobSince = wokenBy(t, bob, bobSince, "the message over federation", func() {}, func(r *mautrix.RespSync) bool {
		j := r.Rooms.Join[room.RoomID]
		return j != nil && hasEvent(j.Timeline.Events, msg)
	})

	typing := func(r *mautrix.RespSync) bool {
		for _, ev := range testserver.Ephemeral(r, room.RoomID, event.EphemeralEventTyping) {
			for _, u := range ev.Content.AsTyping().UserIDs {
				if u == alice.UserID {
					return true
				}
			}
		}
		return false
	}
	carolSince = wokenBy(t, carol, carolSince, "alice typing", func() {
		if _, err := alice.UserTyping(ctx, room.RoomID, true, 20*time.Second); err != nil {
			t.Fatal(err)
		}
	}, typing)
	bobSince = wokenBy(t, bob, bobSince, "alice typing over federation", func() {}, typing)

	receipt := func(r *mautrix.RespSync) bool {
		return len(testserver.Ephemeral(r, room.RoomID, event.EphemeralEventReceipt)) > 0
	}
	carolSince = wokenBy(t, carol, carolSince, "a receipt", func() {
		if err := alice.MarkRead(ctx, room.RoomID, msg); err != nil {
			t.Fatal(err)
		}
	}, receipt)
	bobSince = wokenBy(t, bob, bobSince, "a receipt over federation", func() {}, receipt)

	presence := func(r *mautrix.RespSync) bool {
		for _, ev := range r.Presence.Events {
			if ev.Sender == alice.UserID && ev.Content.Raw["status_msg"] == "on the bus" {
				return true
			}
		}
		return false
	}
	carolSince = wokenBy(t, carol, carolSince, "alice's presence", func() {
		if err := alice.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceOnline, StatusMsg: "on the bus"}); err != nil {
			t.Fatal(err)
		}
	}, presence)
	bobSince = wokenBy(t, bob, bobSince, "alice's presence over federation", func() {}, presence)

	carolSince = wokenBy(t, carol, carolSince, "her own account data", func() {
		if err := carol.SetAccountData(ctx, "org.example.bus", map[string]any{"n": 1}); err != nil {
			t.Fatal(err)
		}
	}, func(r *mautrix.RespSync) bool {
		for _, ev := range r.AccountData.Events {
			if ev.Type.Type == "org.example.bus" {
				return true
			}
		}
		return false
	})

	wokenBy(t, carol, carolSince, "a to-device message", func() {
		_, err := alice.SendToDevice(ctx, event.NewEventType("org.example.bus"), &mautrix.ReqSendToDevice{
			Messages: map[id.UserID]map[id.DeviceID]*event.Content{carol.UserID: {"*": {Raw: map[string]any{"n": 1}}}},
		})
		if err != nil {
			t.Fatal(err)
		}
	}, func(r *mautrix.RespSync) bool { return len(r.ToDevice.Events) > 0 })

}

// wokenBy long-polls c's /sync from since while change is made and
// returns the next batch once a response satisfies ok. A response that
// does not, after the long-poll's whole timeout, means nothing woke the
// /sync: the listener that should have did not hear the change.
func wokenBy(t *testing.T, c *mautrix.Client, since, what string, change func(), ok func(*mautrix.RespSync) bool) string {
	t.Helper()
	const timeout = 15 * time.Second
	type answer struct {
		resp   *mautrix.RespSync
		err    error
		parked time.Duration
	}
	poll := func() chan answer {
		out := make(chan answer, 1)
		go func() {
			start := time.Now()
			resp, err := c.FullSyncRequest(context.Background(), mautrix.ReqSync{Timeout: int(timeout.Milliseconds()), Since: since})
			out <- answer{resp, err, time.Since(start)}
		}()
		return out
	}
	pending := poll()
	change()
	for range 10 {
		a := <-pending
		if a.err != nil {
			t.Fatalf("%s: sync: %v", c.UserID, a.err)
		}
		since = a.resp.NextBatch
		if ok(a.resp) {
			return since
		}
		if a.parked >= timeout-time.Second {
			t.Fatalf("%s was not woken by %s", c.UserID, what)
		}
		pending = poll()
	}
	t.Fatalf("%s never saw %s", c.UserID, what)
	return ""
}

func hasMember(evs []*event.Event, user id.UserID) bool {
	for _, ev := range evs {
		if ev.Type == event.StateMember && ev.StateKey != nil && *ev.StateKey == user.String() {
			return true
		}
	}
	return false
}

func hasEvent(evs []*event.Event, eventID id.EventID) bool {
	for _, ev := range evs {
		if ev.ID == eventID {
			return true
		}
	}
	return false
}
