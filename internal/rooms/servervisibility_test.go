package rooms

import (
	"context"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// fedRoom drives a public room on a.test that members of other servers
// join over "federation".
type fedRoom struct {
	t      *testing.T
	e      *Engine
	roomID string
	last   *Event
}

func (r *fedRoom) send(sender, typ string, stateKey *string, content any) *Event {
	r.t.Helper()
	ev, err := r.e.Send(context.Background(), SendRequest{RoomID: r.roomID, Sender: sender, Type: typ, StateKey: stateKey, Content: content})
	if err != nil {
		r.t.Fatalf("send %s: %v", typ, err)
	}
	r.last = ev
	return ev
}

func (r *fedRoom) visibility(hv string) *Event {
	return r.send("@alice:a.test", spec.MRoomHistoryVisibility, strp(""), map[string]string{"history_visibility": hv})
}

func (r *fedRoom) message() *Event {
	return r.send("@alice:a.test", "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": "hello"})
}

// remoteMember sends a membership event of a remote user built and
// signed by its server, on top of the room's latest event.
func (r *fedRoom) remoteMember(userID, membership string) *Event {
	r.t.Helper()
	ctx := context.Background()
	v, _ := r.e.RoomVersion(ctx, r.roomID)
	state, _ := r.e.CurrentState(ctx, r.roomID)
	keys := []roommodel.StateKey{{Type: spec.MRoomCreate}, {Type: spec.MRoomPowerLevels}, {Type: spec.MRoomMember, StateKey: userID}}
	if membership == spec.Join {
		keys = append(keys, roommodel.StateKey{Type: spec.MRoomJoinRules})
	}
	auth := r.e.stateIDs(r.t, state, keys...)
	pdu := newRemote(serverOf(userID)).build(r.t, v, r.roomID, userID, spec.MRoomMember, strp(userID),
		map[string]string{"membership": membership}, []string{r.last.EventID()}, auth, r.last.Depth()+1, time.Now())
	ev, err := r.e.Receive(ctx, pdu)
	if err != nil || ev.Status != roommodel.Accepted {
		r.t.Fatalf("%s %s: %+v %v", userID, membership, ev, err)
	}
	r.last = ev
	return ev
}

// TestServerCanSee walks a room through every history visibility and
// membership of b.test's user, checking what b.test and c.test (no
// member until the end) may see of each event.
func TestServerCanSee(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		e, _, _ := newTestEngine(t, dbURL)
		roomID, err := e.CreateRoom(ctx, CreateRequest{Creator: "@alice:a.test", Preset: PresetPublicChat, Version: "10"})
		if err != nil {
			t.Fatal(err)
		}
		r := &fedRoom{t: t, e: e, roomID: roomID}
		type check struct {
			name string
			ev   *Event
			// b and c are whether b.test and c.test may see the event.
			b, c bool
		}
		var checks []check
		add := func(name string, ev *Event, b, c bool) { checks = append(checks, check{name, ev, b, c}) }

		add("shared by default", r.message(), true, true)
		add("joined: visibility event itself (state before: shared)", r.visibility(Joined), true, true)
		add("joined, no member", r.message(), false, false)
		bob := "@bob:b.test"
		if _, err := e.SetMembership(ctx, MembershipRequest{Sender: "@alice:a.test", RoomID: roomID, Target: bob, Membership: spec.Invite}); err != nil {
			t.Fatal(err)
		}
		r.last, _ = e.Event(ctx, lastEventID(t, e, roomID))
		add("joined, member invited", r.message(), false, false)
		r.visibility(Invited)
		add("invited, member invited", r.message(), true, false)
		add("invited: own join", r.remoteMember(bob, spec.Join), true, false)
		add("invited, member joined", r.message(), true, false)
		r.visibility(Joined)
		add("joined, member joined", r.message(), true, false)
		add("joined: own leave (state before: joined)", r.remoteMember(bob, spec.Leave), true, false)
		add("joined, member left", r.message(), false, false)
		add("joined: own join seen with the state after it", r.remoteMember("@carol:c.test", spec.Join), false, true)
		add("joined, other server's member joined", r.message(), false, true)
		r.visibility(Shared)
		add("shared", r.message(), true, true)
		r.visibility(WorldReadable)
		add("world_readable", r.message(), true, true)

		for _, c := range checks {
			for _, s := range []struct {
				server string
				want   bool
			}{{"b.test", c.b}, {"c.test", c.c}, {"a.test", true}} {
				got, err := e.ServerCanSee(ctx, s.server, c.ev)
				if err != nil {
					t.Fatal(err)
				}
				if got != s.want {
					t.Errorf("%s: %s sees %v, want %v", c.name, s.server, got, s.want)
				}
			}
		}

		// The batch form redacts what the server may not see.
		evs := make([]*Event, len(checks))
		for i, c := range checks {
			evs[i] = c.ev
		}
		pdus, err := e.EventsForServer(ctx, "b.test", evs)
		if err != nil || len(pdus) != len(evs) {
			t.Fatalf("EventsForServer: %d events, %v", len(pdus), err)
		}
		for i, c := range checks {
			if pdus[i].EventID() != c.ev.EventID() {
				t.Fatalf("%s: event %s at its place, want %s", c.name, pdus[i].EventID(), c.ev.EventID())
			}
			_, hasBody := jsonObject(t, pdus[i].Content())["body"]
			if c.ev.Type() == "m.room.message" && hasBody != c.b {
				t.Errorf("%s: body kept %v, want %v", c.name, hasBody, c.b)
			}
		}
	})
}

// lastEventID is the room's latest event, from its current state's head.
func lastEventID(t *testing.T, e *Engine, roomID string) string {
	t.Helper()
	h, err := e.lockRoom(context.Background(), roomID)
	if err != nil {
		t.Fatal(err)
	}
	defer e.unlockRoom(h)
	if len(h.extremities) != 1 {
		t.Fatalf("room has %d forward extremities", len(h.extremities))
	}
	return h.extremities[0]
}
