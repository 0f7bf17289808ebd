package federation_test

import (
	"context"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestTimestampToEventStoresRemoteAnswer: when /timestamp_to_event is
// answered by another server (the event is from before this server
// joined), the event it names is fetched and stored as backfilled
// history, as Synapse does, so that the client's next /context and
// /event on it are served from here.
func TestTimestampToEventStoresRemoteAnswer(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2 := net.Servers[0], net.Servers[1]
		alice := hs1.Register("alice", "password1234")
		bob := hs2.Register("bob", "password1234")
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		room := created.RoomID
		var ids []id.EventID
		var ts []int64
		for range 3 {
			// A millisecond apart at least: messages sharing a timestamp
			// would make "backwards from the second" the third.
			time.Sleep(2 * time.Millisecond)
			resp, err := alice.SendText(ctx, room, "old news")
			if err != nil {
				t.Fatal(err)
			}
			ev, err := alice.GetEvent(ctx, room, resp.EventID)
			if err != nil {
				t.Fatal(err)
			}
			ids, ts = append(ids, resp.EventID), append(ts, ev.Timestamp)
		}
		if _, err := bob.JoinRoom(ctx, room.String(), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
			t.Fatal(err)
		}
		if evs, err := hs2.Engine().EventsByID(ctx, []string{ids[1].String()}); err != nil || len(evs) != 0 {
			t.Fatalf("hs2 holds the message before asking: %d %v", len(evs), err)
		}
		resp, err := bob.TimestampToEvent(ctx, room, time.UnixMilli(ts[1]), mautrix.DirectionBackward)
		if err != nil || resp.EventID != ids[1] {
			t.Fatalf("hs2 backwards from the second message: %+v %v, want %s", resp, err, ids[1])
		}
		if evs, err := hs2.Engine().EventsByID(ctx, []string{ids[1].String()}); err != nil || len(evs) != 1 {
			t.Fatalf("hs2 did not store the remote answer: %d %v", len(evs), err)
		}
		c, err := bob.Context(ctx, room, ids[1], nil, 1)
		if err != nil || c.Event == nil || c.Event.ID != ids[1] {
			t.Fatalf("/context on the remote answer: %+v %v", c, err)
		}
	})
}
