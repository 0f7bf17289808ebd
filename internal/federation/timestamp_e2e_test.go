package federation_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestTimestampToEventAsksOtherServers: a server that has nothing near
// the time asked, or whose forward search starts before the history it
// has (from before it joined), asks the room's other servers, as
// Synapse does, and answers with the closer event.
func TestTimestampToEventAsksOtherServers(t *testing.T) {
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
			resp, err := alice.SendText(ctx, room, "old news")
			if err != nil {
				t.Fatal(err)
			}
			ev, err := alice.GetEvent(ctx, room, resp.EventID)
			if err != nil {
				t.Fatal(err)
			}
			ids, ts = append(ids, resp.EventID), append(ts, ev.Timestamp)
			// Each message its own millisecond: two in one (test servers
			// are fast) would make the lookup's answer either of them.
			time.Sleep(2 * time.Millisecond)
		}
		if _, err := bob.JoinRoom(ctx, room.String(), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
			t.Fatal(err)
		}
		resp, err := bob.TimestampToEvent(ctx, room, time.UnixMilli(ts[1]), mautrix.DirectionBackward)
		if err != nil || resp.EventID != ids[1] || resp.Timestamp.UnixMilli() != ts[1] {
			t.Fatalf("hs2 backwards from the second message: %+v %v, want %s", resp, err, ids[1])
		}
		// Forwards from before hs2's history, hs2 has bob's join, but the
		// room's history goes on before it on hs1: hs1's closer answer wins.
		resp, err = bob.TimestampToEvent(ctx, room, time.UnixMilli(ts[0]), mautrix.DirectionForward)
		if err != nil || resp.EventID != ids[0] {
			t.Fatalf("hs2 forwards from the first message: %+v %v, want %s", resp, err, ids[0])
		}
		// After the join, hs2's own events answer.
		join, err := bob.TimestampToEvent(ctx, room, time.UnixMilli(ts[2]+1), mautrix.DirectionForward)
		if err != nil {
			t.Fatal(err)
		}
		if ev, err := bob.GetEvent(ctx, room, join.EventID); err != nil || ev.Sender != bob.UserID {
			t.Fatalf("hs2 forwards after the messages: %+v %v, want bob's join", ev, err)
		}
		// Before the room began nobody has anything: 404, as locally.
		_, err = bob.TimestampToEvent(ctx, room, time.UnixMilli(1), mautrix.DirectionBackward)
		testserver.WantHTTPError(t, "before the room", err, http.StatusNotFound, "M_NOT_FOUND")
	})
}
