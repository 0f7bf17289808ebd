package federation_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestPartialStateJoin: bob of hs2 joins a named public room of hs1,
// whose send_join answer omits the members (omit_members). While hs2's
// state is partial (its resync held), the room is usable: bob sends and
// receives messages and typing notices, others cannot join through
// hs2, and a member list asked for waits for the full state (as
// Synapse's does). An
// event of mallory, whom the omitted state bans but whose event names
// her earlier join as its auth event, is accepted meanwhile. Once the
// full state arrives, bob's /members lists everyone, and mallory's
// event is rejected.
func TestPartialStateJoin(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, partialJoins, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2 := net.Servers[0], net.Servers[1]
		alice := hs1.Register("alice", "password1234")
		carol := hs1.Register("carol", "password1234")
		mallory := hs1.Register("mallory", "password1234")
		bob := hs2.Register("bob", "password1234")
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Partial"})
		if err != nil {
			t.Fatal(err)
		}
		roomID := created.RoomID
		for _, c := range []*mautrix.Client{carol, mallory} {
			if _, err := c.JoinRoom(ctx, roomID.String(), nil); err != nil {
				t.Fatal(err)
			}
		}
		malloryJoin := membershipEvent(t, hs1, roomID, mallory.UserID)
		if _, err := alice.BanUser(ctx, roomID, &mautrix.ReqBanUser{UserID: mallory.UserID}); err != nil {
			t.Fatal(err)
		}

		release := hs2.PartialStateResync().Hold()
		defer release()
		if _, err := bob.JoinRoom(ctx, roomID.String(), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
			t.Fatalf("bob joins with partial state: %v", err)
		}
		if partial, servers, err := hs2.Engine().PartialState(ctx, roomID.String()); err != nil || !partial || !slices.Contains(servers, "hs1.test") {
			t.Fatalf("hs2's room after the join: partial %v, servers %v, %v", partial, servers, err)
		}
		// Without the full state hs2 does not let others join through it.
		status, body := net.SignedRequest(t, hs1, hs2, http.MethodGet,
			"/_matrix/federation/v1/make_join/"+url.PathEscape(roomID.String())+"/"+url.PathEscape("@dave:hs1.test")+"?ver=12&ver=10", nil)
		testserver.WantError(t, "make_join through a partial-state server", status, body, http.StatusNotFound, "M_NOT_FOUND")
		// The room has a name: no heroes, so hs2 knows only bob's
		// membership; the member list waits for the full state.
		if state, err := hs2.Engine().CurrentState(ctx, roomID.String()); err != nil ||
			state[roommodel.StateKey{Type: spec.MRoomMember, StateKey: alice.UserID.String()}] != 0 {
			t.Fatalf("hs2's partial state holds alice's membership (%v)", err)
		}
		listed := make(chan []id.UserID, 1)
		go func() {
			resp, err := bob.JoinedMembers(ctx, roomID)
			if err != nil {
				listed <- nil
				return
			}
			listed <- keys(resp.Joined)
		}()

		// Usable at once: messages both ways.
		bobSync := &sendSyncer{c: bob}
		aliceSync := &sendSyncer{c: alice}
		if _, err := bob.SendText(ctx, roomID, "from bob, partially joined"); err != nil {
			t.Fatalf("bob sends during partial state: %v", err)
		}
		aliceSync.waitMessages(t, roomID, "from bob, partially joined")
		if _, err := alice.SendText(ctx, roomID, "from alice"); err != nil {
			t.Fatal(err)
		}
		bobSync.waitMessages(t, roomID, "from alice")
		// EDUs go to the servers the resident server named, too.
		if _, err := bob.UserTyping(ctx, roomID, true, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		testserver.SyncUntil(t, alice, "", "bob typing during partial state", func(r *mautrix.RespSync) bool {
			for _, ev := range testserver.Ephemeral(r, roomID, event.EphemeralEventTyping) {
				if slices.Contains(ev.Content.AsTyping().UserIDs, bob.UserID) {
					return true
				}
			}
			return false
		})

		// mallory's event claims her join, which the partial state
		// cannot contradict. hs1 never had it (the test signs it), so it
		// is handed to hs2's engine with its auth chain, as federation
		// input does once it fetched the chain from the origin.
		forged := partialBuild(t, hs2, hs1, roomID.String(), mallory.UserID.String(), malloryJoin,
			map[string]any{"msgtype": "m.text", "body": "mallory was here"})
		if _, err := hs2.Engine().ReceiveWithState(ctx, forged, nil, []gomatrixserverlib.PDU{malloryJoin.PDU}); err != nil {
			t.Fatalf("receiving mallory's event: %v", err)
		}
		if st := eventStatus(t, hs2, forged.EventID()); st != roommodel.Accepted {
			t.Fatalf("mallory's event during partial state: status %d, want accepted", st)
		}

		select {
		case got := <-listed:
			t.Fatalf("joined_members answered during partial state: %v", got)
		default:
		}
		release()
		sendPoll(t, "hs2's room completed", func() string {
			partial, _, err := hs2.Engine().PartialState(ctx, roomID.String())
			if err != nil || partial {
				return "still partial"
			}
			return ""
		})
		if got := <-listed; len(got) != 3 {
			t.Fatalf("joined_members asked during partial state: %v, want alice, carol and bob", got)
		}
		wantJoined(t, bob, roomID, "@alice:hs1.test", "@carol:hs1.test", "@bob:hs2.test")
		var m event.MemberEventContent
		if err := bob.StateEvent(ctx, roomID, event.StateMember, mallory.UserID.String(), &m); err != nil || m.Membership != event.MembershipBan {
			t.Fatalf("mallory's membership on hs2 after the resync: %q, %v", m.Membership, err)
		}
		if st := eventStatus(t, hs2, forged.EventID()); st != roommodel.Rejected {
			t.Fatalf("mallory's event after the resync: status %d, want rejected", st)
		}
		// The room goes on as a full one.
		if _, err := bob.SendText(ctx, roomID, "from bob, fully joined"); err != nil {
			t.Fatal(err)
		}
		aliceSync.waitMessages(t, roomID, "from bob, fully joined")
	})
}

// membershipEvent is a user's current membership event in a room on s.
func membershipEvent(t *testing.T, s *testserver.Server, roomID id.RoomID, user id.UserID) *rooms.Event {
	t.Helper()
	_, nid, err := s.Engine().MembershipEventOf(context.Background(), roomID.String(), user.String())
	if err != nil {
		t.Fatal(err)
	}
	evs, err := s.Engine().EventsByNID(context.Background(), []int64{nid})
	if err != nil || len(evs) != 1 {
		t.Fatalf("membership event of %s: %v", user, err)
	}
	return evs[0]
}

// eventStatus is the status (accepted, soft-failed, rejected) s stored
// an event with.
func eventStatus(t *testing.T, s *testserver.Server, eventID string) roommodel.Status {
	t.Helper()
	evs, err := s.Engine().EventsByID(context.Background(), []string{eventID})
	if err != nil || len(evs) != 1 {
		t.Fatalf("event %s on %s: %d found, %v", eventID, s.Config.ServerName, len(evs), err)
	}
	return evs[0].Status
}

// partialBuild builds a message of sender, signed by server as, on top of
// at's forward extremities, whose auth events are the room's create and
// power levels events and memberEv (whatever at's state says).
func partialBuild(t *testing.T, at, as *testserver.Server, roomID, sender string, memberEv *rooms.Event, content any) gomatrixserverlib.PDU {
	t.Helper()
	ctx := context.Background()
	e := at.Engine()
	v, err := e.RoomVersion(ctx, roomID)
	if err != nil {
		t.Fatal(err)
	}
	prevs, _, err := e.Extremities(ctx, roomID)
	if err != nil {
		t.Fatal(err)
	}
	prevEvs, err := e.EventsByID(ctx, prevs)
	if err != nil {
		t.Fatal(err)
	}
	var depth int64
	for _, p := range prevEvs {
		depth = max(depth, p.Depth()+1)
	}
	state, err := e.CurrentState(ctx, roomID)
	if err != nil {
		t.Fatal(err)
	}
	authIDs := []string{memberEv.EventID()}
	for _, k := range []roommodel.StateKey{{Type: spec.MRoomCreate}, {Type: spec.MRoomPowerLevels}} {
		if k.Type == spec.MRoomCreate && v.DomainlessRoomIDs() {
			continue
		}
		evs, err := e.EventsByNID(ctx, []int64{state[k]})
		if err != nil || len(evs) != 1 {
			t.Fatalf("%s of %s: %v", k.Type, roomID, err)
		}
		authIDs = append(authIDs, evs[0].EventID())
	}
	raw, err := json.Marshal(content)
	if err != nil {
		t.Fatal(err)
	}
	b := v.NewEventBuilderFromProtoEvent(&gomatrixserverlib.ProtoEvent{
		SenderID: sender, RoomID: roomID, Type: "m.room.message", PrevEvents: prevs, AuthEvents: authIDs, Depth: depth, Content: raw,
	})
	key := serverKey(t, as)
	pdu, err := b.Build(time.Now(), spec.ServerName(as.Config.ServerName), gomatrixserverlib.KeyID(key.ID), key.Private)
	if err != nil {
		t.Fatal(err)
	}
	return pdu
}

// TestPartialStateJoinHeroes: a room without a name or canonical alias
// is named after its heroes, so a send_join with omit_members keeps
// their memberships (spec, send_join v2): hs2's partial state holds the
// five heroes' memberships (joined members other than the joiner, in
// user ID order) and bob's own, and no other member's.
func TestPartialStateJoinHeroes(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, partialJoins, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2 := net.Servers[0], net.Servers[1]
		users := []*mautrix.Client{hs1.Register("u1", "password1234")}
		created, err := users[0].CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		roomID := created.RoomID
		for i := 2; i <= 7; i++ {
			c := hs1.Register(fmt.Sprintf("u%d", i), "password1234")
			if _, err := c.JoinRoom(ctx, roomID.String(), nil); err != nil {
				t.Fatal(err)
			}
		}
		bob := hs2.Register("bob", "password1234")
		release := hs2.PartialStateResync().Hold()
		defer release()
		if _, err := bob.JoinRoom(ctx, roomID.String(), &mautrix.ReqJoinRoom{Via: []string{"hs1.test"}}); err != nil {
			t.Fatal(err)
		}
		state, err := hs2.Engine().CurrentState(ctx, roomID.String())
		if err != nil {
			t.Fatal(err)
		}
		var members []string
		for k := range state {
			if k.Type == spec.MRoomMember {
				members = append(members, k.StateKey)
			}
		}
		slices.Sort(members)
		want := []string{"@bob:hs2.test", "@u1:hs1.test", "@u2:hs1.test", "@u3:hs1.test", "@u4:hs1.test", "@u5:hs1.test"}
		if !slices.Equal(members, want) {
			t.Fatalf("members in hs2's partial state: %v, want %v", members, want)
		}
		release()
		sendPoll(t, "hs2's room completed", func() string {
			if partial, _, err := hs2.Engine().PartialState(ctx, roomID.String()); err != nil || partial {
				return "still partial"
			}
			return ""
		})
		wantJoined(t, bob, roomID, "@u1:hs1.test", "@u2:hs1.test", "@u3:hs1.test", "@u4:hs1.test", "@u5:hs1.test",
			"@u6:hs1.test", "@u7:hs1.test", "@bob:hs2.test")
	})
}

// partialJoins turns partial-state joins on (off by default).
func partialJoins(_ int, c *config.Config) { c.Federation.PartialStateJoins = true }
