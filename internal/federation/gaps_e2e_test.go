package federation_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
	"github.com/myelin-chat/myelin/internal/testserver/peer"
)

// peerJoin makes a new user of s join the peer's room through make_join
// and send_join, and returns the user's client.
func peerJoin(t *testing.T, s *testserver.Server, p *peer.Peer, room *peer.Room, localpart string) *mautrix.Client {
	t.Helper()
	c := s.Register(localpart, "password")
	if _, err := c.JoinRoom(context.Background(), room.ID, &mautrix.ReqJoinRoom{Via: []string{p.Name}}); err != nil {
		t.Fatalf("%s joining the peer's room: %v", localpart, err)
	}
	return c
}

func peerMessage(t *testing.T, room *peer.Room, prevs []string, sender, body string) string {
	t.Helper()
	return room.CreateAfter(t, prevs, sender, "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": body}).EventID()
}

// TestGapFilledWithStateIDs: an event arrives after a gap that
// /get_missing_events does not fill (the peer answers it with nothing),
// from a server that does not serve /state (Synapse does, but the spec
// only guarantees /state_ids and /event). The state at the gap comes from
// /state_ids and the events lacking from /event: the gap's new member is
// allowed to speak, the topic set in the gap is the room's, and the event
// shows in /sync.
func TestGapFilledWithStateIDs(t *testing.T) {
	peer.EachEngine(t, 1, nil, func(t *testing.T, net *testserver.Network, p *peer.Peer) {
		hs1 := net.Servers[0]
		p.Refuse(peer.State, http.StatusNotFound)
		room := p.CreateRoom(t)
		alice := peerJoin(t, hs1, p, room, "alice")
		sync := &sendSyncer{c: alice}
		sync.waitMessages(t, id.RoomID(room.ID))

		// The gap: bob of the peer joins, the topic changes, bob talks;
		// none of it reaches hs1 and get_missing_events finds nothing.
		bob := p.UserID("bob")
		room.Create(t, bob, spec.MRoomMember, &bob, map[string]string{"membership": spec.Join})
		empty := ""
		room.Create(t, room.Creator, spec.MRoomTopic, &empty, map[string]string{"topic": "set in the gap"})
		peerMessage(t, room, room.Extremities(), bob, "in the gap")
		p.OnMissingEvents(func([]json.RawMessage) []json.RawMessage { return nil })
		last := room.Create(t, bob, "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": "after the gap"})
		since := sync.since
		if res := p.Send(t, hs1, last); res[last.EventID()] != "" {
			t.Fatalf("event after the gap refused: %q", res[last.EventID()])
		}
		// The next /sync has the event, and is limited with the gap's state
		// changes in its state section: the gap's events were skipped.
		_, joined := syncRoom(t, hs1, alice, since, `{}`, room.ID)
		if joined == nil || !slices.Contains(eventIDs(joined.Timeline.Events), last.EventID()) {
			t.Fatalf("the event after the gap is not in the next sync: %+v", joined)
		}
		if !joined.Timeline.Limited {
			t.Fatal("the timeline after a skipped gap is not limited")
		}
		var types []string
		for _, ev := range joined.State.Events {
			types = append(types, ev.Type.Type)
		}
		if !slices.Contains(types, "m.room.topic") {
			t.Fatalf("the topic set in the gap is not in the sync's state: %q", types)
		}
		var topic struct {
			Topic string `json:"topic"`
		}
		if err := alice.StateEvent(context.Background(), id.RoomID(room.ID), event.StateTopic, "", &topic); err != nil || topic.Topic != "set in the gap" {
			t.Fatalf("topic after the gap: %q, %v", topic.Topic, err)
		}
		if p.Hits(peer.StateIDs) == 0 || p.Hits(peer.State) != 0 {
			t.Fatalf("asked /state_ids %d times and /state %d times", p.Hits(peer.StateIDs), p.Hits(peer.State))
		}
	})
}

// TestMissingAuthEventsFetched: an event whose auth events hs1 lacks (a
// power levels event of a branch it never saw) gets them from /event_auth
// and is checked against them, not refused for lacking them (Synapse's
// _update_auth_events_for_auth).
func TestMissingAuthEventsFetched(t *testing.T) {
	peer.EachEngine(t, 1, nil, func(t *testing.T, net *testserver.Network, p *peer.Peer) {
		hs1 := net.Servers[0]
		room := p.CreateRoom(t)
		alice := peerJoin(t, hs1, p, room, "alice")
		sync := &sendSyncer{c: alice}
		sync.waitMessages(t, id.RoomID(room.ID))

		// A side branch hs1 never hears of raises bob's power; bob's
		// message on the main branch names that power levels event among
		// its auth events.
		empty := ""
		bob := p.UserID("bob")
		main := room.Extremities()
		join := room.CreateAfter(t, main, bob, spec.MRoomMember, &bob, map[string]string{"membership": spec.Join})
		if res := p.Send(t, hs1, join); res[join.EventID()] != "" {
			t.Fatalf("bob's join refused: %q", res[join.EventID()])
		}
		side := room.CreateAfter(t, []string{join.EventID()}, room.Creator, spec.MRoomPowerLevels, &empty, map[string]any{
			"users": map[string]int{room.Creator: 100, bob: 50}, "users_default": 0, "events_default": 0, "state_default": 50,
		})
		msg := room.BuildWithAuth(t, []string{join.EventID()}, bob, "m.room.message", nil,
			map[string]string{"msgtype": "m.text", "body": "with unknown auth"}, side.EventID())
		room.Add(msg)
		if res := p.Send(t, hs1, msg); res[msg.EventID()] != "" {
			t.Fatalf("event with missing auth events refused: %q", res[msg.EventID()])
		}
		sync.waitMessages(t, id.RoomID(room.ID), "with unknown auth")
		if p.Hits(peer.EventAuth) == 0 || p.Hits(peer.GetMissingEvents) != 0 {
			t.Fatalf("asked /event_auth %d times and /get_missing_events %d times, for an event without a gap",
				p.Hits(peer.EventAuth), p.Hits(peer.GetMissingEvents))
		}
	})
}

// TestMissingEventsSkipsInvalid: an answer to /get_missing_events that
// holds events invalid for the room version (an oversized state key, a
// float where the canonical JSON allows only integers, an event of
// another room) has them dropped and the rest received.
func TestMissingEventsSkipsInvalid(t *testing.T) {
	peer.EachEngine(t, 1, nil, func(t *testing.T, net *testserver.Network, p *peer.Peer) {
		hs1 := net.Servers[0]
		room := p.CreateRoom(t)
		alice := peerJoin(t, hs1, p, room, "alice")
		sync := &sendSyncer{c: alice}
		sync.waitMessages(t, id.RoomID(room.ID))

		peerMessage(t, room, room.Extremities(), room.Creator, "missed 1")
		peerMessage(t, room, room.Extremities(), room.Creator, "missed 2")
		p.OnMissingEvents(func(evs []json.RawMessage) []json.RawMessage {
			long := strings.Repeat("k", 300)
			bad := []json.RawMessage{
				json.RawMessage(`{"type":"m.room.member","state_key":"` + long + `","room_id":"` + room.ID + `"}`),
				json.RawMessage(`{"type":"m.room.message","depth":1.5,"room_id":"` + room.ID + `"}`),
				json.RawMessage(`"not an object"`),
			}
			return append(bad, evs...)
		})
		last := room.Create(t, room.Creator, "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": "after"})
		if res := p.Send(t, hs1, last); res[last.EventID()] != "" {
			t.Fatalf("event refused: %q", res[last.EventID()])
		}
		sync.waitMessages(t, id.RoomID(room.ID), "missed 1", "missed 2", "after")
	})
}

// TestGapBeyondMissingEvents, across Myelin servers: a gap larger than
// /get_missing_events fills (carol of hs3 joins, then says more than a
// hundred things that only hs2 holds) is bridged with hs2's /state_ids
// and /event at the oldest event fetched: carol's join, in the part of
// the gap never fetched, is in hs1's state, and her last message is in
// alice's /sync.
func TestGapBeyondMissingEvents(t *testing.T) {
	testserver.EachEngineNetwork(t, 3, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2, hs3 := net.Servers[0], net.Servers[1], net.Servers[2]
		alice, _, roomID := sendRoom(t, net)
		sync := &sendSyncer{c: alice}
		sync.waitMessages(t, roomID)
		room, carol := roomID.String(), hs3.UserID("carol")
		receive := func(pdu gomatrixserverlib.PDU) {
			t.Helper()
			if _, err := hs2.Engine().Receive(ctx, pdu); err != nil {
				t.Fatal(err)
			}
		}
		receive(sendBuild(t, hs2, hs3, room, carol, spec.MRoomMember, &carol, map[string]string{"membership": spec.Join}))
		for i := range 130 {
			receive(sendBuild(t, hs2, hs3, room, carol, "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": fmt.Sprintf("gap %d", i)}))
		}
		last := sendBuild(t, hs2, hs3, room, carol, "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": "after the gap"})
		receive(last)
		status, body := net.SignedRequest(t, hs2, hs1, http.MethodPut, sendPath+"big-gap", sendTxn(hs2, last.JSON()))
		testserver.WantStatus(t, "send", status, body, http.StatusOK)
		if e, ok := sendResult(t, body, last.EventID()); !ok || e != "" {
			t.Fatalf("event after a large gap: %v", body)
		}
		if m, _ := hs1.Engine().MembershipOf(ctx, room, carol); m != spec.Join {
			t.Fatalf("carol on hs1: %q", m)
		}
		sync.waitMessages(t, roomID, "after the gap")
	})
}

// TestGapOriginServesNoState: an origin that answers neither /state_ids
// nor /event for a gap gets a per-event refusal in a 200 answer, not an
// error for the transaction, and the rest of the transaction is
// received.
func TestGapOriginServesNoState(t *testing.T) {
	peer.EachEngine(t, 1, nil, func(t *testing.T, net *testserver.Network, p *peer.Peer) {
		hs1 := net.Servers[0]
		room := p.CreateRoom(t)
		alice := peerJoin(t, hs1, p, room, "alice")
		sync := &sendSyncer{c: alice}
		sync.waitMessages(t, id.RoomID(room.ID))
		before := room.Extremities()
		peerMessage(t, room, before, room.Creator, "never seen")
		p.OnMissingEvents(func([]json.RawMessage) []json.RawMessage { return nil })
		p.Refuse(peer.StateIDs, http.StatusNotFound)
		p.Refuse(peer.State, http.StatusNotFound)
		p.Refuse(peer.Event, http.StatusNotFound)
		orphan := room.Create(t, room.Creator, "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": "orphan"})
		fine := room.CreateAfter(t, before, room.Creator, "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": "fine"})
		res := p.Send(t, hs1, orphan, fine)
		if res[orphan.EventID()] == "" || res[fine.EventID()] != "" {
			t.Fatalf("answers: %q", res)
		}
		sync.waitMessages(t, id.RoomID(room.ID), "fine")
	})
}

// TestGapWithLargeState: when the state at a gap lacks many events here
// (120 members joined in it), it is fetched with one /state request
// where the origin serves it (Synapse's heuristic), and event by event
// with /event where it does not.
func TestGapWithLargeState(t *testing.T) {
	for _, serveState := range []bool{true, false} {
		t.Run(fmt.Sprintf("state served %v", serveState), func(t *testing.T) {
			peer.EachEngine(t, 1, nil, func(t *testing.T, net *testserver.Network, p *peer.Peer) {
				hs1 := net.Servers[0]
				if !serveState {
					p.Refuse(peer.State, http.StatusNotFound)
				}
				room := p.CreateRoom(t)
				alice := peerJoin(t, hs1, p, room, "alice")
				sync := &sendSyncer{c: alice}
				sync.waitMessages(t, id.RoomID(room.ID))
				for i := range 120 {
					user := p.UserID(fmt.Sprintf("member%03d", i))
					room.Create(t, user, spec.MRoomMember, &user, map[string]string{"membership": spec.Join})
				}
				p.OnMissingEvents(func([]json.RawMessage) []json.RawMessage { return nil })
				last := room.Create(t, p.UserID("member119"), "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": "after the crowd"})
				if res := p.Send(t, hs1, last); res[last.EventID()] != "" {
					t.Fatalf("event after the gap refused: %q", res[last.EventID()])
				}
				sync.waitMessages(t, id.RoomID(room.ID), "after the crowd")
				if m, _ := hs1.Engine().MembershipOf(context.Background(), room.ID, p.UserID("member000")); m != spec.Join {
					t.Fatalf("member000 on hs1: %q", m)
				}
				states, events := p.Hits(peer.State), p.Hits(peer.Event)
				if serveState && (states != 1 || events > 5) {
					t.Fatalf("asked /state %d times and /event %d times", states, events)
				}
				if !serveState && events < 120 {
					t.Fatalf("asked /event %d times", events)
				}
			})
		})
	}
}

// TestGapStateIDsHostile: a /state_ids answer naming IDs no event can
// have (NUL, invalid UTF-8, megabytes) refuses the event after the gap
// in a 200 answer on both databases, rather than failing the
// transaction (which the origin would retry).
func TestGapStateIDsHostile(t *testing.T) {
	peer.EachEngine(t, 1, nil, func(t *testing.T, net *testserver.Network, p *peer.Peer) {
		hs1 := net.Servers[0]
		room := p.CreateRoom(t)
		alice := peerJoin(t, hs1, p, room, "alice")
		(&sendSyncer{c: alice}).waitMessages(t, id.RoomID(room.ID))
		p.OnMissingEvents(func([]json.RawMessage) []json.RawMessage { return nil })
		for i, bad := range []string{"$nul\x00id", "$bad\xffutf8", "$" + strings.Repeat("x", 1<<20)} {
			p.OnStateIDs(func(state, chain []string) ([]string, []string) { return append(state, bad), chain })
			peerMessage(t, room, room.Extremities(), room.Creator, fmt.Sprintf("gap %d", i))
			last := room.Create(t, room.Creator, "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": "after"})
			if res := p.Send(t, hs1, last); res[last.EventID()] == "" {
				t.Fatalf("answer %d: the event was accepted", i)
			}
		}
	})
}
