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

// bigHole is larger than the 1,000 positions every hole used to keep.
const bigHole = 1200

// TestBigHoleInHistoryBackfilled: the peer sends an event 1,200 events
// after the last one this server has and refuses /get_missing_events,
// so the event is stored over a hole bigger than the 1,000 positions a
// hole kept before its size was read from the depths. /context on that
// event backfills the hole's newest events as its events_before; paging
// /messages back then returns every event of the hole, in order,
// between its neighbours.
func TestBigHoleInHistoryBackfilled(t *testing.T) {
	peer.EachEngine(t, 1, nil, func(t *testing.T, net *testserver.Network, p *peer.Peer) {
		ctx := context.Background()
		hs1 := net.Servers[0]
		room := p.CreateRoom(t)
		alice := peerJoin(t, hs1, p, room, "alice")
		var want []string
		for i := range 2 {
			body := fmt.Sprintf("before %d", i)
			ev := room.Create(t, room.Creator, "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": body})
			if res := p.Send(t, hs1, ev); res[ev.EventID()] != "" {
				t.Fatalf("%s refused: %q", body, res[ev.EventID()])
			}
			want = append(want, body)
		}
		for i := range bigHole {
			body := fmt.Sprintf("hole %04d", i)
			peerMessage(t, room, room.Extremities(), room.Creator, body)
			want = append(want, body)
		}
		p.Refuse(peer.GetMissingEvents, http.StatusNotFound)
		last := room.Create(t, room.Creator, "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": "after"})
		want = append(want, "after")
		if res := p.Send(t, hs1, last); res[last.EventID()] != "" {
			t.Fatalf("event after the hole refused: %q", res[last.EventID()])
		}

		hits := p.Hits(peer.Backfill)
		c, err := alice.Context(ctx, id.RoomID(room.ID), id.EventID(last.EventID()), nil, 10)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := strings.Join(messageBodies(c.EventsBefore), "|"), fmt.Sprintf("hole %04d|hole %04d|hole %04d|hole %04d|hole %04d", bigHole-5, bigHole-4, bigHole-3, bigHole-2, bigHole-1); got != want {
			t.Fatalf("/context's events before the event above the hole: %q, want %q", got, want)
		}
		if p.Hits(peer.Backfill) == hits {
			t.Fatal("/context did not backfill the hole")
		}

		var got []string
		from := ""
		for page := 0; ; page++ {
			if page == 40 {
				t.Fatal("history does not end")
			}
			resp, err := alice.Messages(ctx, id.RoomID(room.ID), from, "", mautrix.DirectionBackward, nil, 100)
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
			t.Fatalf("history after backfilling a hole of %d: %d messages, want %d; first %q", bigHole, len(got), len(want), got[:min(5, len(got))])
		}
	})
}
