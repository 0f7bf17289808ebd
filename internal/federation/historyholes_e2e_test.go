package federation_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
	"github.com/myelin-chat/myelin/internal/testserver/peer"
)

// allMessages pages a room's history backwards to its start, 4 events a
// page (so that pages cross the hole), and returns the bodies oldest
// first.
func allMessages(t *testing.T, c *mautrix.Client, roomID string) []string {
	t.Helper()
	var got []string
	from := ""
	for page := 0; page < 50; page++ {
		resp, err := c.Messages(context.Background(), id.RoomID(roomID), from, "", mautrix.DirectionBackward, nil, 4)
		if err != nil {
			t.Fatalf("page %d: %v", page, err)
		}
		got = append(messageBodies(resp.Chunk), got...)
		if resp.End == "" {
			return got
		}
		from = resp.End
	}
	t.Fatal("history does not end")
	return nil
}

// TestHoleInHistoryBackfilled: the peer sends an event thirty events after
// the last one this server has, and refuses /get_missing_events, so the
// event is stored over a hole (its state from /state_ids). While the
// peer also refuses /backfill, /messages pages across the hole without
// its events; once the peer serves /backfill, /messages backfills at the
// hole (not only at the room's start) and returns its events in their
// place, oldest to newest between their neighbours.
func TestHoleInHistoryBackfilled(t *testing.T) {
	peer.EachEngine(t, 1, nil, func(t *testing.T, net *testserver.Network, p *peer.Peer) {
		hs1 := net.Servers[0]
		room := p.CreateRoom(t)
		alice := peerJoin(t, hs1, p, room, "alice")
		var want []string
		for i := range 3 {
			body := fmt.Sprintf("before %d", i)
			ev := room.Create(t, room.Creator, "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": body})
			if res := p.Send(t, hs1, ev); res[ev.EventID()] != "" {
				t.Fatalf("%s refused: %q", body, res[ev.EventID()])
			}
			want = append(want, body)
		}
		for i := range 30 {
			body := fmt.Sprintf("hole %02d", i)
			peerMessage(t, room, room.Extremities(), room.Creator, body)
			want = append(want, body)
		}
		p.Refuse(peer.GetMissingEvents, http.StatusNotFound)
		p.Refuse(peer.Backfill, http.StatusNotFound)
		last := room.Create(t, room.Creator, "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": "after"})
		want = append(want, "after")
		if res := p.Send(t, hs1, last); res[last.EventID()] != "" {
			t.Fatalf("event after the hole refused: %q", res[last.EventID()])
		}
		without := allMessages(t, alice, room.ID)
		if strings.Join(without, "|") != "before 0|before 1|before 2|after" {
			t.Fatalf("history with the hole unfilled: %q", without)
		}
		p.Refuse(peer.Backfill, 0)
		// One page of four: the newest of the hole follow the event above
		// it, for one /backfill (a page that stops above what is filled
		// does not ask for more).
		hits := p.Hits(peer.Backfill)
		resp, err := alice.Messages(context.Background(), id.RoomID(room.ID), "", "", mautrix.DirectionBackward, nil, 4)
		if err != nil {
			t.Fatal(err)
		}
		if got := messageBodies(resp.Chunk); strings.Join(got, "|") != "hole 27|hole 28|hole 29|after" {
			t.Fatalf("the first page after the hole: %q", got)
		}
		if n := p.Hits(peer.Backfill) - hits; n != 1 {
			t.Fatalf("the first page asked /backfill %d times, want 1", n)
		}
		if got := allMessages(t, alice, room.ID); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("history after backfilling the hole:\n got %q\nwant %q", got, want)
		}
		if p.Hits(peer.Backfill) < 2 {
			t.Fatalf("asked /backfill %d times", p.Hits(peer.Backfill))
		}
		// Filled: the next reads stay in place without asking again.
		hits = p.Hits(peer.Backfill)
		if got := allMessages(t, alice, room.ID); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("history read again:\n got %q\nwant %q", got, want)
		}
		if p.Hits(peer.Backfill) != hits {
			t.Fatalf("a filled hole was backfilled again (%d, then %d requests)", hits, p.Hits(peer.Backfill))
		}
	})
}
