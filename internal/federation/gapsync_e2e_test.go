package federation_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/matrix-org/gomatrixserverlib/spec"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
	"github.com/myelin-chat/myelin/internal/testserver/peer"
)

// syncRoom is one /sync of c with a filter, and the room's part of it.
func syncRoom(t *testing.T, s *testserver.Server, c *mautrix.Client, since, filter string, roomID string) (next string, room *mautrix.SyncJoinedRoom) {
	t.Helper()
	q := url.Values{"filter": {filter}, "timeout": {"0"}}
	if since != "" {
		q.Set("since", since)
	}
	var resp mautrix.RespSync
	r := testserver.Send(t, nil, http.MethodGet, s.URL+"/_matrix/client/v3/sync?"+q.Encode(), c.AccessToken, nil)
	if r.Status != http.StatusOK {
		t.Fatalf("sync: %d %s", r.Status, r.Raw)
	}
	if err := json.Unmarshal(r.Raw, &resp); err != nil {
		t.Fatal(err)
	}
	return resp.NextBatch, resp.Rooms.Join[id.RoomID(roomID)]
}

func eventIDs(evs []*event.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID.String()
	}
	return out
}

// TestLateEventInSyncAndMessages: an event of another server that
// arrives after events built later on this one (a fork made during a
// partition, healed) is in the next /sync's timeline in the order it
// arrived, the timeline is limited when it skips events, and /messages
// from its prev_batch pages through what was skipped (Synapse's stream
// and topological orderings agree on this; see the conformance suite's
// network partition test).
func TestLateEventInSyncAndMessages(t *testing.T) {
	peer.EachEngine(t, 1, nil, func(t *testing.T, net *testserver.Network, p *peer.Peer) {
		hs1 := net.Servers[0]
		room := p.CreateRoom(t)
		alice := peerJoin(t, hs1, p, room, "alice")
		bob := peerJoin(t, hs1, p, room, "bob")
		filter := `{"room":{"timeline":{"limit":4}}}`
		since, _ := syncRoom(t, hs1, bob, "", filter, room.ID)

		// The peer's event forks from what it has now; hs1 hears of it only
		// after alice's first four messages.
		late := room.Build(t, room.Extremities(), room.Creator, "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": "late"})
		var mine []string
		say := func(i int) {
			resp, err := alice.SendText(context.Background(), id.RoomID(room.ID), fmt.Sprintf("event %d", i))
			if err != nil {
				t.Fatal(err)
			}
			mine = append(mine, resp.EventID.String())
		}
		for i := 1; i <= 4; i++ {
			say(i)
		}
		room.Add(late)
		if res := p.Send(t, hs1, late); res[late.EventID()] != "" {
			t.Fatalf("late event refused: %q", res[late.EventID()])
		}
		for i := 5; i <= 7; i++ {
			say(i)
		}
		_, joined := syncRoom(t, hs1, bob, since, filter, room.ID)
		if joined == nil {
			t.Fatal("room missing from bob's sync")
		}
		want := append([]string{late.EventID()}, mine[4:]...)
		if got := eventIDs(joined.Timeline.Events); !slices.Equal(got, want) || !joined.Timeline.Limited {
			t.Fatalf("timeline %q limited %v, want %q limited", got, joined.Timeline.Limited, want)
		}
		resp, err := bob.Messages(context.Background(), id.RoomID(room.ID), joined.Timeline.PrevBatch, "", mautrix.DirectionBackward, nil, 4)
		if err != nil {
			t.Fatal(err)
		}
		wantBack := slices.Clone(mine[:4])
		slices.Reverse(wantBack)
		if got := eventIDs(resp.Chunk); !slices.Equal(got, wantBack) {
			t.Fatalf("/messages from prev_batch: %q, want %q", got, wantBack)
		}
	})
}

// TestForkedStateWithFilteredMerge: a state event that arrives on a
// branch forked before alice's last messages reaches the client of a
// sync whose timeline filter drops the event that merged the branches
// (Synapse issue 16928): the state section carries what the filtered
// timeline does not show.
func TestForkedStateWithFilteredMerge(t *testing.T) {
	peer.EachEngine(t, 1, nil, func(t *testing.T, net *testserver.Network, p *peer.Peer) {
		hs1 := net.Servers[0]
		room := p.CreateRoom(t)
		alice := peerJoin(t, hs1, p, room, "alice")
		ctx := context.Background()
		roomID := id.RoomID(room.ID)
		e1, err := alice.SendText(ctx, roomID, "E1")
		if err != nil {
			t.Fatal(err)
		}
		sendPoll(t, "E1 at the peer", func() string {
			if room.Event(e1.EventID.String()) == nil {
				return "not yet"
			}
			return ""
		})
		empty := ""
		s2 := room.Build(t, []string{e1.EventID.String()}, room.Creator, spec.MRoomName, &empty, map[string]string{"name": "named on a branch"})
		for _, body := range []string{"E3", "E4"} {
			if _, err := alice.SendText(ctx, roomID, body); err != nil {
				t.Fatal(err)
			}
		}
		room.Add(s2)
		if res := p.Send(t, hs1, s2); res[s2.EventID()] != "" {
			t.Fatalf("S2 refused: %q", res[s2.EventID()])
		}
		if _, err := alice.SendMessageEvent(ctx, roomID, event.Type{Type: "please.filter.me", Class: event.MessageEventType}, map[string]string{"body": "E5"}); err != nil {
			t.Fatal(err)
		}
		for _, filter := range []string{
			`{"room":{"timeline":{"not_types":["please.filter.me"],"limit":1}}}`,
			`{"room":{"timeline":{"types":["m.room.message"],"limit":1}}}`,
		} {
			_, joined := syncRoom(t, hs1, alice, "", filter, room.ID)
			if joined == nil {
				t.Fatal("room missing from the sync")
			}
			// The timeline is in stream order: S2, received after E4, is
			// the last event the first filter keeps, and the client learns
			// it there; the second keeps only E4, and S2 must be in state.
			if !slices.Contains(append(eventIDs(joined.State.Events), eventIDs(joined.Timeline.Events)...), s2.EventID()) {
				t.Errorf("filter %s: S2 neither in state %q nor in timeline %q", filter, eventIDs(joined.State.Events), eventIDs(joined.Timeline.Events))
			}
		}
	})
}
