package federation_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
	"github.com/myelin-chat/myelin/internal/testserver/peer"
)

// messageBodies are the bodies of the messages of a /messages chunk,
// oldest first.
func messageBodies(chunk []*event.Event) []string {
	var out []string
	for i := len(chunk) - 1; i >= 0; i-- {
		ev := chunk[i]
		if ev.Type == event.EventMessage {
			_ = ev.Content.ParseRaw(ev.Type)
			out = append(out, ev.Content.AsMessage().Body)
		}
	}
	return out
}

// numbered sends n messages "<prefix> NNN" and returns their bodies.
func numbered(t *testing.T, c *mautrix.Client, room id.RoomID, prefix string, n int) []string {
	t.Helper()
	var out []string
	for i := range n {
		body := fmt.Sprintf("%s %03d", prefix, i)
		send(t, c, room, body)
		out = append(out, body)
	}
	return out
}

// TestBackfillFillsThePage: /messages past the oldest event a server
// holds backfills from the room's other servers until the page has the
// limit asked (one /backfill answer holds at most 100 events) or the
// room's start is reached.
func TestBackfillFillsThePage(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2 := net.Servers[0], net.Servers[1]
		alice, bob := hs1.Register("alice", "password1234"), hs2.Register("bob", "password1234")
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		room := created.RoomID
		want := numbered(t, alice, room, "old", 180)
		if _, err := bob.JoinRoom(ctx, room.String(), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
			t.Fatal(err)
		}
		resp, err := bob.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 150)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Chunk) != 150 {
			t.Fatalf("first page: %d events, want 150", len(resp.Chunk))
		}
		if got := messageBodies(resp.Chunk); strings.Join(got, "|") != strings.Join(want[len(want)-len(got):], "|") {
			t.Fatalf("first page out of order: %q", got)
		}
		// Past the room's start the page is short and has no end.
		resp, err = bob.Messages(ctx, room, resp.End, "", mautrix.DirectionBackward, nil, 150)
		if err != nil {
			t.Fatal(err)
		}
		got := messageBodies(resp.Chunk)
		if resp.End != "" || len(got) == 0 || got[0] != "old 000" {
			t.Fatalf("last page: end %q, %d messages from %q", resp.End, len(got), got)
		}
	})
}

// TestBackfillAfterRejoin: a user of hs2 who left a room of hs1 and
// rejoined pages back through what was said while hs2 was out of the
// room and on to the room's start.
func TestBackfillAfterRejoin(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2 := net.Servers[0], net.Servers[1]
		alice, bob := hs1.Register("alice", "password1234"), hs2.Register("bob", "password1234")
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		room := created.RoomID
		want := numbered(t, alice, room, "before", 20)
		if _, err := bob.JoinRoom(ctx, room.String(), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
			t.Fatal(err)
		}
		want = append(want, numbered(t, alice, room, "together", 5)...)
		sync := &sendSyncer{c: bob}
		sync.waitMessages(t, room, want[len(want)-1])
		if _, err := bob.LeaveRoom(ctx, room); err != nil {
			t.Fatal(err)
		}
		sendPoll(t, "bob's leave on hs1", func() string {
			if m, _ := hs1.Engine().MembershipOf(ctx, room.String(), bob.UserID.String()); m != "leave" {
				return "membership " + m
			}
			return ""
		})
		want = append(want, numbered(t, alice, room, "away", 15)...)
		if _, err := bob.JoinRoom(ctx, room.String(), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
			t.Fatal(err)
		}
		var got []string
		from := ""
		for page := 0; page < 30; page++ {
			resp, err := bob.Messages(ctx, room, from, "", mautrix.DirectionBackward, nil, 7)
			if err != nil {
				t.Fatalf("page %d: %v", page, err)
			}
			got = append(messageBodies(resp.Chunk), got...)
			if resp.End == "" {
				break
			}
			from = resp.End
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("bob's history after rejoining:\n got %q\nwant %q", got, want)
		}
	})
}

// TestBackfillFromStrictPeer: history before a join to the scripted
// peer's room is backfilled from a server that serves /backfill,
// /state_ids and /event but not /state, in order and to the room's
// start.
func TestBackfillFromStrictPeer(t *testing.T) {
	peer.EachEngine(t, 1, nil, func(t *testing.T, net *testserver.Network, p *peer.Peer) {
		ctx := context.Background()
		hs1 := net.Servers[0]
		p.Refuse(peer.State, http.StatusNotFound)
		room := p.CreateRoom(t)
		var want []string
		for i := range 130 {
			body := fmt.Sprintf("old %03d", i)
			peerMessage(t, room, room.Extremities(), room.Creator, body)
			want = append(want, body)
		}
		alice := peerJoin(t, hs1, p, room, "alice")
		var got []string
		from := ""
		for page := 0; page < 20; page++ {
			resp, err := alice.Messages(ctx, id.RoomID(room.ID), from, "", mautrix.DirectionBackward, nil, 50)
			if err != nil {
				t.Fatalf("page %d: %v", page, err)
			}
			got = append(messageBodies(resp.Chunk), got...)
			if resp.End == "" {
				break
			}
			from = resp.End
		}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("history from the peer:\n got %q\nwant %q", got, want)
		}
		if p.Hits(peer.Backfill) == 0 || p.Hits(peer.State) != 0 {
			t.Fatalf("asked /backfill %d times and /state %d times", p.Hits(peer.Backfill), p.Hits(peer.State))
		}
	})
}
