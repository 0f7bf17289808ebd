package clientapi_test

import (
	"context"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestRoomBasics drives two clients through a room's life: create,
// invite, join, messages both ways, /sync (initial, incremental and a
// long-poll woken by a new message), leave.
func TestRoomBasics(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw")
		bob := s.Register("bob", "pw")

		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Name: "Tea", Invite: []id.UserID{bob.UserID}})
		if err != nil {
			t.Fatalf("createRoom: %v", err)
		}
		roomID := created.RoomID

		bobSync, err := bob.SyncRequest(ctx, 0, "", "", false, "")
		if err != nil {
			t.Fatalf("bob initial sync: %v", err)
		}
		if _, ok := bobSync.Rooms.Invite[roomID]; !ok {
			t.Fatalf("bob's sync has no invite for %s: %+v", roomID, bobSync.Rooms)
		}
		if _, err := bob.JoinRoomByID(ctx, roomID); err != nil {
			t.Fatalf("join: %v", err)
		}
		sent, err := alice.SendText(ctx, roomID, "hello bob")
		if err != nil {
			t.Fatalf("send: %v", err)
		}

		next, err := bob.SyncRequest(ctx, 0, bobSync.NextBatch, "", false, "")
		if err != nil {
			t.Fatalf("bob incremental sync: %v", err)
		}
		joined, ok := next.Rooms.Join[roomID]
		if !ok {
			t.Fatalf("room missing from bob's incremental sync")
		}
		if !hasEvent(joined.Timeline.Events, sent.EventID) {
			t.Fatalf("bob's timeline lacks the message: %+v", joined.Timeline.Events)
		}
		// Newly joined: the state section carries the room's state.
		if !hasState(joined.State.Events, "m.room.name") && !hasState(joined.Timeline.Events, "m.room.name") {
			t.Fatalf("no room name in bob's state")
		}

		// A long-poll wakes up when alice sends. (It may wake first for
		// bob's unread count of the first message, which push evaluation
		// stores just after it: then it polls again.)
		poll := func(since string) chan *mautrix.RespSync {
			done := make(chan *mautrix.RespSync, 1)
			go func() {
				resp, err := bob.SyncRequest(ctx, 30000, since, "", false, "")
				if err != nil {
					t.Errorf("long poll: %v", err)
				}
				done <- resp
			}()
			return done
		}
		done := poll(next.NextBatch)
		time.Sleep(50 * time.Millisecond)
		second, err := alice.SendText(ctx, roomID, "are you there?")
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.After(10 * time.Second)
		for woken := false; !woken; {
			select {
			case resp := <-done:
				if resp == nil {
					t.Fatal("long poll failed")
				}
				r := resp.Rooms.Join[roomID]
				switch {
				case r != nil && hasEvent(r.Timeline.Events, second.EventID):
					woken = true
				case r == nil || len(r.Timeline.Events) == 0:
					// Woken for something else: bob's presence, or the
					// room's counts without its timeline.
					done = poll(resp.NextBatch)
				default:
					t.Fatalf("long poll returned without the new message")
				}
			case <-deadline:
				t.Fatal("long poll was not woken")
			}
		}

		msgs, err := alice.Messages(ctx, roomID, "", "", mautrix.DirectionBackward, nil, 10)
		if err != nil || len(msgs.Chunk) < 2 || msgs.Chunk[0].ID != second.EventID {
			t.Fatalf("messages: %v %+v", err, msgs)
		}

		// A profile change reaches the rooms the user is in.
		if err := bob.SetDisplayName(ctx, "Robert"); err != nil {
			t.Fatal(err)
		}
		members, err := alice.JoinedMembers(ctx, roomID)
		if err != nil || members.Joined[bob.UserID].DisplayName != "Robert" {
			t.Fatalf("joined_members after bob's rename: %+v %v", members, err)
		}

		if _, err := bob.LeaveRoom(ctx, roomID); err != nil {
			t.Fatalf("leave: %v", err)
		}
		rooms, err := bob.JoinedRooms(ctx)
		if err != nil || len(rooms.JoinedRooms) != 0 {
			t.Fatalf("joined rooms after leave: %+v %v", rooms, err)
		}
	})
}

func hasEvent(evs []*event.Event, id id.EventID) bool {
	for _, ev := range evs {
		if ev.ID == id {
			return true
		}
	}
	return false
}

func hasState(evs []*event.Event, typ string) bool {
	for _, ev := range evs {
		if ev.Type.Type == typ {
			return true
		}
	}
	return false
}
