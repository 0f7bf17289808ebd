package federation_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
	"github.com/myelin-chat/myelin/internal/testserver/peer"
)

// wantServedRedacted checks that every client read of an event shows it
// redacted by red: /event, /context and /messages (the event's content
// emptied, unsigned.redacted_because naming the redaction).
func wantServedRedacted(t *testing.T, s *testserver.Server, c *mautrix.Client, roomID, eventID, red string) {
	t.Helper()
	check := func(what string, ev map[string]any) {
		t.Helper()
		if ev == nil {
			t.Fatalf("%s: event %s missing", what, eventID)
		}
		if content, _ := ev["content"].(map[string]any); len(content) != 0 {
			t.Fatalf("%s: %s not redacted: content %v", what, eventID, content)
		}
		unsigned, _ := ev["unsigned"].(map[string]any)
		because, _ := unsigned["redacted_because"].(map[string]any)
		if because["event_id"] != red {
			t.Fatalf("%s: %s redacted_because %v, want %s", what, eventID, unsigned["redacted_because"], red)
		}
	}
	base := s.URL + "/_matrix/client/v3/rooms/" + url.PathEscape(roomID)
	r := testserver.Send(t, nil, http.MethodGet, base+"/event/"+url.PathEscape(eventID), c.AccessToken, nil)
	testserver.WantStatus(t, "/event", r.Status, r.JSON, http.StatusOK)
	check("/event", r.JSON)
	r = testserver.Send(t, nil, http.MethodGet, base+"/context/"+url.PathEscape(eventID)+"?limit=2", c.AccessToken, nil)
	testserver.WantStatus(t, "/context", r.Status, r.JSON, http.StatusOK)
	ev, _ := r.JSON["event"].(map[string]any)
	check("/context", ev)
	r = testserver.Send(t, nil, http.MethodGet, base+"/messages?dir=b&limit=100", c.AccessToken, nil)
	testserver.WantStatus(t, "/messages", r.Status, r.JSON, http.StatusOK)
	chunk, _ := r.JSON["chunk"].([]any)
	var found map[string]any
	for _, e := range chunk {
		if m, _ := e.(map[string]any); m["event_id"] == eventID {
			found = m
		}
	}
	check("/messages", found)
}

func peerRedaction(t *testing.T, room *peer.Room, prevs []string, sender, target string) gomatrixserverlib.PDU {
	t.Helper()
	return room.Build(t, prevs, sender, spec.MRoomRedaction, nil, map[string]string{"redacts": target, "reason": "first"})
}

// TestRedactionBeforeTargetOverSend: a redaction arrives over /send
// before its target (both built on the same event, so neither is the
// other's prev event and nothing fetches the target early). When the
// target arrives it is stored redacted, as Synapse applies the
// redactions it keeps by target: /sync, /event, /context and /messages
// all show it redacted.
func TestRedactionBeforeTargetOverSend(t *testing.T) {
	peer.EachEngine(t, 1, nil, func(t *testing.T, net *testserver.Network, p *peer.Peer) {
		hs1 := net.Servers[0]
		room := p.CreateRoom(t)
		alice := peerJoin(t, hs1, p, room, "alice")
		sync := &sendSyncer{c: alice}
		sync.waitMessages(t, id.RoomID(room.ID))

		bob := p.UserID("bob")
		room.Create(t, bob, spec.MRoomMember, &bob, map[string]string{"membership": spec.Join})
		fork := room.Extremities()
		target := room.Build(t, fork, bob, "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": "regretted"})
		red := peerRedaction(t, room, fork, bob, target.EventID())
		room.Add(red)
		room.Add(target)
		if res := p.Send(t, hs1, red); res[red.EventID()] != "" {
			t.Fatalf("redaction refused: %q", res[red.EventID()])
		}
		since := sync.since
		if res := p.Send(t, hs1, target); res[target.EventID()] != "" {
			t.Fatalf("target refused: %q", res[target.EventID()])
		}
		_, joined := syncRoom(t, hs1, alice, since, `{}`, room.ID)
		if joined == nil {
			t.Fatal("no room in the sync after the target arrived")
		}
		var synced *event.Event
		for _, ev := range joined.Timeline.Events {
			if ev.ID.String() == target.EventID() {
				synced = ev
			}
		}
		if synced == nil {
			t.Fatalf("the target is not in the next sync: %v", eventIDs(joined.Timeline.Events))
		}
		if len(synced.Content.Raw) != 0 || synced.Unsigned.RedactedBecause == nil || synced.Unsigned.RedactedBecause.ID.String() != red.EventID() {
			t.Fatalf("the target reached /sync unredacted: content %v, redacted_because %v", synced.Content.Raw, synced.Unsigned.RedactedBecause)
		}
		wantServedRedacted(t, hs1, alice, room.ID, target.EventID(), red.EventID())
		// Over federation too: the peer reads it back redacted.
		status, body := p.Request(t, hs1, http.MethodGet, "/_matrix/federation/v1/event/"+url.PathEscape(target.EventID()), nil)
		if status != http.StatusOK || !slices.Equal(pduBodiesRaw(t, body), []string{"-"}) {
			t.Fatalf("federation /event of the target: %d %s", status, body)
		}
	})
}

// TestRedactionBeforeTargetBackfilled: a redaction of an event older
// than this server's join arrives over /send; the target arrives later
// through /backfill, when a client pages back, and is served redacted.
func TestRedactionBeforeTargetBackfilled(t *testing.T) {
	peer.EachEngine(t, 1, nil, func(t *testing.T, net *testserver.Network, p *peer.Peer) {
		ctx := context.Background()
		hs1 := net.Servers[0]
		room := p.CreateRoom(t)
		peerMessage(t, room, room.Extremities(), room.Creator, "old 1")
		target := peerMessage(t, room, room.Extremities(), room.Creator, "old secret")
		peerMessage(t, room, room.Extremities(), room.Creator, "old 2")
		alice := peerJoin(t, hs1, p, room, "alice")
		red := peerRedaction(t, room, room.Extremities(), room.Creator, target)
		room.Add(red)
		if res := p.Send(t, hs1, red); res[red.EventID()] != "" {
			t.Fatalf("redaction refused: %q", res[red.EventID()])
		}
		var bodies []string
		from := ""
		for page := 0; page < 10; page++ {
			resp, err := alice.Messages(ctx, id.RoomID(room.ID), from, "", mautrix.DirectionBackward, nil, 10)
			if err != nil {
				t.Fatal(err)
			}
			bodies = append(messageBodies(resp.Chunk), bodies...)
			if resp.End == "" {
				break
			}
			from = resp.End
		}
		if !slices.Contains(bodies, "old 1") || slices.Contains(bodies, "old secret") {
			t.Fatalf("backfilled history: %q (want old 1, and old secret redacted)", bodies)
		}
		wantServedRedacted(t, hs1, alice, room.ID, target, red.EventID())
	})
}

func pduBodiesRaw(t *testing.T, raw []byte) []string {
	t.Helper()
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	return pduBodies(t, body["pdus"])
}
