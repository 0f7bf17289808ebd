package federation_test

import (
	"context"
	"encoding/json"
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

	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// Restricted rooms across three servers (client-server spec "Restricted
// rooms"; server-server make_join/send_join; the auth rules of room
// versions 8 and later). hs1 holds a space and a room restricted to it;
// hs2 is in the room but cannot vouch for anyone; hs3's users join.

type restrictedRooms struct {
	net              *testserver.Network
	hs1, hs2, hs3    *testserver.Server
	alice, bob       *mautrix.Client
	carol, dave      *mautrix.Client
	space, room      id.RoomID
	carolID, daveID  string
	aliceID, bobID   string
	spaceVia, viaHS1 []string
}

// newRestrictedRooms: alice (hs1, power 100) creates a public space and
// a version 10 room restricted to it, where inviting takes power 50.
// carol (hs3) joins the space; dave (hs3) does not. bob (hs2) joins the
// space and then the room, with power 0.
func newRestrictedRooms(t *testing.T, net *testserver.Network) *restrictedRooms {
	ctx := context.Background()
	r := &restrictedRooms{net: net, hs1: net.Servers[0], hs2: net.Servers[1], hs3: net.Servers[2]}
	r.alice = r.hs1.Register("alice", "password1234")
	r.bob = r.hs2.Register("bob", "password1234")
	r.carol = r.hs3.Register("carol", "password1234")
	r.dave = r.hs3.Register("dave", "password1234")
	r.aliceID, r.bobID, r.carolID, r.daveID = "@alice:hs1.test", "@bob:hs2.test", "@carol:hs3.test", "@dave:hs3.test"
	r.viaHS1 = []string{"hs1.test"}
	space, err := r.alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Space",
		CreationContent: map[string]any{"type": "m.space"}})
	if err != nil {
		t.Fatal(err)
	}
	r.space = space.RoomID
	room, err := r.alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Members only", RoomVersion: "10",
		InitialState: []*event.Event{{Type: event.StateJoinRules, Content: event.Content{Raw: map[string]any{
			"join_rule": "restricted", "allow": []any{map[string]any{"type": "m.room_membership", "room_id": r.space.String()}},
		}}}},
		PowerLevelOverride: &event.PowerLevelsEventContent{Users: map[id.UserID]int{id.UserID(r.aliceID): 100, "@mod:hs1.test": 50}, InvitePtr: ptr(50)},
		Invite:             []id.UserID{"@mod:hs1.test"},
	})
	if err != nil {
		t.Fatal(err)
	}
	r.room = room.RoomID
	// mod may invite too, with less power than alice.
	if _, err := r.hs1.Register("mod", "password1234").JoinRoom(ctx, r.room.String(), nil); err != nil {
		t.Fatal(err)
	}
	// carol first, so that hs2 learns of her membership from the state
	// bob's join brings rather than from hs1 forwarding it later.
	for _, c := range []*mautrix.Client{r.carol, r.bob} {
		if _, err := c.JoinRoom(ctx, r.space.String(), &mautrix.ReqJoinRoom{Via: r.viaHS1}); err != nil {
			t.Fatalf("%s joins the space: %v", c.UserID, err)
		}
	}
	if _, err := r.bob.JoinRoom(ctx, r.room.String(), &mautrix.ReqJoinRoom{Via: r.viaHS1}); err != nil {
		t.Fatalf("bob joins the restricted room: %v", err)
	}
	waitForMembership(t, r.alice, r.room, r.bobID, event.MembershipJoin)
	awaitFullState(t, r.hs2, r.space)
	awaitFullState(t, r.hs2, r.room)
	return r
}

func ptr[T any](v T) *T { return &v }

// awaitFullState waits until server s holds the whole state of a room it
// joined with partial state: until then it answers make_join with 404
// and knows only some of the members.
func awaitFullState(t *testing.T, s *testserver.Server, roomID id.RoomID) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.Engine().AwaitFullState(ctx, roomID.String()); err != nil {
		t.Fatalf("%s never got the full state of %s: %v", s.Config.ServerName, roomID, err)
	}
}

// makeJoin asks server to of the restricted room for a join template
// for userID, as hs3 would.
func (r *restrictedRooms) makeJoin(t *testing.T, to *testserver.Server, userID string) (int, map[string]any) {
	t.Helper()
	return r.net.SignedRequest(t, r.hs3, to, http.MethodGet,
		"/_matrix/federation/v1/make_join/"+url.PathEscape(r.room.String())+"/"+url.PathEscape(userID)+"?ver=10", nil)
}

// TestRestrictedJoinOverFederation walks every branch of a restricted
// join across three servers.
func TestRestrictedJoinOverFederation(t *testing.T) {
	testserver.EachEngineNetwork(t, 3, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		r := newRestrictedRooms(t, net)

		// A resident server in the space, with members who may invite:
		// its template names the one with the most power, and the join it
		// countersigns gets in.
		status, body := r.makeJoin(t, r.hs1, r.carolID)
		testserver.WantStatus(t, "make_join at hs1", status, body, http.StatusOK)
		if via := templateVia(t, body); via != r.aliceID {
			t.Fatalf("hs1's template names %q as authoriser, want %s", via, r.aliceID)
		}
		// hs2 is in the space and the room, but bob may not invite.
		status, body = r.makeJoin(t, r.hs2, r.carolID)
		testserver.WantError(t, "make_join at hs2, no one may invite", status, body, http.StatusBadRequest, "M_UNABLE_TO_GRANT_JOIN")
		// The joining server tries the next via when one cannot grant
		// the join, and when one does not answer.
		if _, err := r.carol.JoinRoom(ctx, r.room.String(), &mautrix.ReqJoinRoom{Via: []string{"hs2.test", "down.test", "hs1.test"}}); err != nil {
			t.Fatalf("carol joins through hs2, then an unreachable server, then hs1: %v", err)
		}
		waitForMembership(t, r.alice, r.room, r.carolID, event.MembershipJoin)
		var member map[string]any
		if err := r.carol.StateEvent(ctx, r.room, event.StateMember, r.carolID, &member); err != nil || member["join_authorised_via_users_server"] != r.aliceID {
			t.Fatalf("carol's join on hs3: %v, %v; want it authorised by %s", member, err, r.aliceID)
		}

		// erin's server is in the room and the space but no one there may
		// vouch for her: her join goes through hs1, whose alice may, and
		// hs2 takes the join in as any event of the room.
		erin := r.hs2.Register("erin", "password1234")
		if _, err := erin.JoinRoom(ctx, r.space.String(), &mautrix.ReqJoinRoom{Via: r.viaHS1}); err != nil {
			t.Fatal(err)
		}
		waitForMembership(t, r.alice, r.space, "@erin:hs2.test", event.MembershipJoin)
		if _, err := erin.JoinRoom(ctx, r.room.String(), nil); err != nil {
			t.Fatalf("erin joins a room her server is in but cannot vouch for: %v", err)
		}
		if err := erin.StateEvent(ctx, r.room, event.StateMember, "@erin:hs2.test", &member); err != nil || member["join_authorised_via_users_server"] != r.aliceID {
			t.Fatalf("erin's join on hs2: %v, %v; want it authorised by %s", member, err, r.aliceID)
		}
		waitForMembership(t, r.alice, r.room, "@erin:hs2.test", event.MembershipJoin)
		send(t, erin, r.room, "erin is in")
		waitForText(t, r.alice, r.room, "erin is in")

		// dave is in no allowed room: hs1, which is in the space, says no.
		status, body = r.makeJoin(t, r.hs1, r.daveID)
		testserver.WantError(t, "make_join at hs1 for dave", status, body, http.StatusForbidden, "M_FORBIDDEN")
		_, err := r.dave.JoinRoom(ctx, r.room.String(), &mautrix.ReqJoinRoom{Via: []string{"hs2.test", "hs1.test"}})
		testserver.WantHTTPError(t, "dave joins", err, http.StatusForbidden, "M_FORBIDDEN")

		// Once bob and erin have left the space, hs2 is in no allowed
		// room and cannot tell who is in it.
		for _, c := range []*mautrix.Client{r.bob, erin} {
			if _, err := c.LeaveRoom(ctx, r.space); err != nil {
				t.Fatal(err)
			}
			waitForMembership(t, r.alice, r.space, c.UserID.String(), event.MembershipLeave)
		}
		status, body = r.makeJoin(t, r.hs2, r.daveID)
		testserver.WantError(t, "make_join at hs2 outside the space", status, body, http.StatusBadRequest, "M_UNABLE_TO_AUTHORISE_JOIN")

		// Leaving the allowing room takes the right to rejoin away, and
		// coming back to it gives it back.
		if _, err := r.carol.LeaveRoom(ctx, r.room); err != nil {
			t.Fatal(err)
		}
		if _, err := r.carol.LeaveRoom(ctx, r.space); err != nil {
			t.Fatal(err)
		}
		waitForMembership(t, r.alice, r.space, r.carolID, event.MembershipLeave)
		_, err = r.carol.JoinRoom(ctx, r.room.String(), &mautrix.ReqJoinRoom{Via: r.viaHS1})
		testserver.WantHTTPError(t, "carol rejoins after leaving the space", err, http.StatusForbidden, "M_FORBIDDEN")
		if _, err := r.carol.JoinRoom(ctx, r.space.String(), &mautrix.ReqJoinRoom{Via: r.viaHS1}); err != nil {
			t.Fatal(err)
		}
		waitForMembership(t, r.alice, r.space, r.carolID, event.MembershipJoin)
		if _, err := r.carol.JoinRoom(ctx, r.room.String(), &mautrix.ReqJoinRoom{Via: r.viaHS1}); err != nil {
			t.Fatalf("carol rejoins once back in the space: %v", err)
		}
		testAuthorisedElsewhere(t, r)
	})
}

// testAuthorisedElsewhere: a room of hs1 restricted to a space of hs2,
// which hs1 is not in. While no resident server of the room is in the
// space, the joining user's client is told that no server could
// authorise the join; once bob (hs2) is in the room with power to
// invite, the join through hs1 then hs2 is vouched for by bob.
func testAuthorisedElsewhere(t *testing.T, r *restrictedRooms) {
	ctx := context.Background()
	space, err := r.bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", CreationContent: map[string]any{"type": "m.space"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.dave.JoinRoom(ctx, space.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{"hs2.test"}}); err != nil {
		t.Fatal(err)
	}
	room, err := r.alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", RoomVersion: "10",
		InitialState: []*event.Event{{Type: event.StateJoinRules, Content: event.Content{Raw: map[string]any{
			"join_rule": "restricted", "allow": []any{map[string]any{"type": "m.room_membership", "room_id": space.RoomID.String()}},
		}}}},
		PowerLevelOverride: &event.PowerLevelsEventContent{Users: map[id.UserID]int{id.UserID(r.aliceID): 100, id.UserID(r.bobID): 50}},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.dave.JoinRoom(ctx, room.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{"hs1.test", "hs2.test"}})
	testserver.WantHTTPError(t, "dave joins while no resident is in the space", err, http.StatusBadRequest, "M_UNABLE_TO_AUTHORISE_JOIN")
	if _, err := r.alice.InviteUser(ctx, room.RoomID, &mautrix.ReqInviteUser{UserID: id.UserID(r.bobID)}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.bob.JoinRoom(ctx, room.RoomID.String(), &mautrix.ReqJoinRoom{Via: r.viaHS1}); err != nil {
		t.Fatal(err)
	}
	waitForMembership(t, r.alice, room.RoomID, r.bobID, event.MembershipJoin)
	awaitFullState(t, r.hs2, room.RoomID)
	if _, err := r.dave.JoinRoom(ctx, room.RoomID.String(), &mautrix.ReqJoinRoom{Via: []string{"hs1.test", "hs2.test"}}); err != nil {
		t.Fatalf("dave joins through hs1, then hs2: %v", err)
	}
	var member map[string]any
	if err := r.dave.StateEvent(ctx, room.RoomID, event.StateMember, r.daveID, &member); err != nil || member["join_authorised_via_users_server"] != r.bobID {
		t.Fatalf("dave's join: %v, %v; want it authorised by %s", member, err, r.bobID)
	}
	// hs2 accepted the join and forwards it to hs1 (events accepted
	// through send_join are forwarded, issue 14 item 1).
	waitForMembership(t, r.bob, room.RoomID, r.daveID, event.MembershipJoin)
	waitForMembership(t, r.alice, room.RoomID, r.daveID, event.MembershipJoin)
}

func templateVia(t *testing.T, body map[string]any) string {
	t.Helper()
	ev, _ := body["event"].(map[string]any)
	content, _ := ev["content"].(map[string]any)
	via, _ := content["join_authorised_via_users_server"].(string)
	return via
}

// TestRestrictedJoinForgeries: joins hs3 builds itself and sends to
// hs1's send_join without asking make_join. Each is refused and dave
// stays out.
func TestRestrictedJoinForgeries(t *testing.T) {
	testserver.EachEngineNetwork(t, 3, nil, func(t *testing.T, net *testserver.Network) {
		r := newRestrictedRooms(t, net)
		for _, tc := range []struct {
			name       string
			user       string
			authoriser string
			signers    []*testserver.Server
		}{
			// The join rules are restricted: without a voucher it is an
			// invite-only room.
			{"no authoriser", r.daveID, "", nil},
			// hs1 would sign for alice, but dave is in no allowed room.
			{"local authoriser, user outside the allowed rooms", r.daveID, r.aliceID, nil},
			// bob's server never signed.
			{"authoriser's server did not sign", r.carolID, r.bobID, nil},
			// hs2 signed, but bob may not invite.
			{"authoriser may not invite", r.carolID, r.bobID, []*testserver.Server{r.hs2}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				status, body := r.forgedJoin(t, tc.user, tc.authoriser, tc.signers...)
				testserver.WantError(t, "send_join", status, body, http.StatusForbidden, "M_FORBIDDEN")
				if m, _ := r.hs1.Engine().MembershipOf(context.Background(), r.room.String(), tc.user); m == spec.Join {
					t.Fatalf("%s got in", tc.user)
				}
			})
		}
		// hs3 makes the room public on its own say, sends that to hs1
		// (which rejects it: dave may not set join rules), and then a
		// join of dave that cites the forged join rules.
		t.Run("join citing forged join rules", func(t *testing.T) {
			forged := r.hs3Event(t, r.daveID, spec.MRoomJoinRules, "", map[string]any{"join_rule": "public"}, nil, nil)
			status, body := r.net.SignedRequest(t, r.hs3, r.hs1, http.MethodPut, "/_matrix/federation/v1/send/forged-rules",
				map[string]any{"origin": "hs3.test", "origin_server_ts": time.Now().UnixMilli(), "pdus": []json.RawMessage{forged.JSON()}})
			testserver.WantStatus(t, "the forged join rules", status, body, http.StatusOK)
			if evs, err := r.hs1.Engine().EventsByID(context.Background(), []string{forged.EventID()}); err != nil || len(evs) != 1 || evs[0].Status == roommodel.Accepted {
				t.Fatalf("hs1's copy of the forged join rules: %v %v", evs, err)
			}
			join := r.hs3Event(t, r.daveID, spec.MRoomMember, r.daveID, map[string]any{"membership": spec.Join}, nil, &forged)
			status, body = r.sendJoin(t, join)
			if status < 400 || status >= 500 {
				t.Fatalf("send_join citing forged join rules: %d %v", status, body)
			}
			if m, _ := r.hs1.Engine().MembershipOf(context.Background(), r.room.String(), r.daveID); m == spec.Join {
				t.Fatal("dave got in")
			}
		})
	})
}

// forgedJoin builds userID's join of the restricted room on hs1's view
// of it, naming authoriser, signs it as hs3 and the extra signers, and
// sends it to hs1's send_join.
func (r *restrictedRooms) forgedJoin(t *testing.T, userID, authoriser string, signers ...*testserver.Server) (int, map[string]any) {
	t.Helper()
	keys := []roommodel.StateKey{{Type: spec.MRoomJoinRules}}
	content := map[string]any{"membership": spec.Join}
	if authoriser != "" {
		keys = append(keys, roommodel.StateKey{Type: spec.MRoomMember, StateKey: authoriser})
		content["join_authorised_via_users_server"] = authoriser
	}
	pdu := r.hs3Event(t, userID, spec.MRoomMember, userID, content, keys, nil)
	for _, s := range signers {
		k := serverKey(t, s)
		pdu = pdu.Sign(s.Config.ServerName, gomatrixserverlib.KeyID(k.ID), k.Private)
	}
	return r.sendJoin(t, pdu)
}

func (r *restrictedRooms) sendJoin(t *testing.T, pdu gomatrixserverlib.PDU) (int, map[string]any) {
	t.Helper()
	return r.net.SignedRequest(t, r.hs3, r.hs1, http.MethodPut,
		"/_matrix/federation/v2/send_join/"+url.PathEscape(r.room.String())+"/"+url.PathEscape(pdu.EventID()), json.RawMessage(pdu.JSON()))
}

// hs3Event builds a state event of the restricted room as hs3 would, on
// hs1's view of the room: its prev events hs1's forward extremities (or
// prevs), its auth events the create event, the power levels, the
// sender's membership and the state entries keys names (or, for a
// join-rules entry, joinRules), signed by hs3.
func (r *restrictedRooms) hs3Event(t *testing.T, sender, typ, stateKey string, content map[string]any, keys []roommodel.StateKey, prev *gomatrixserverlib.PDU) gomatrixserverlib.PDU {
	t.Helper()
	ctx := context.Background()
	engine := r.hs1.Engine()
	roomID := r.room.String()
	v, err := engine.RoomVersion(ctx, roomID)
	if err != nil {
		t.Fatal(err)
	}
	prevs, depth, err := engine.Extremities(ctx, roomID)
	if err != nil {
		t.Fatal(err)
	}
	state, err := engine.CurrentState(ctx, roomID)
	if err != nil {
		t.Fatal(err)
	}
	keys = append(keys, roommodel.StateKey{Type: spec.MRoomCreate}, roommodel.StateKey{Type: spec.MRoomPowerLevels},
		roommodel.StateKey{Type: spec.MRoomMember, StateKey: sender})
	var auth []string
	if prev != nil {
		// A join on top of a forged join rules event cites it.
		keys = slices.DeleteFunc(keys, func(k roommodel.StateKey) bool { return k.Type == spec.MRoomJoinRules })
		prevs, auth, depth = []string{(*prev).EventID()}, []string{(*prev).EventID()}, (*prev).Depth()
	}
	authEvs, err := engine.StateEvents(ctx, state, keys...)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range authEvs {
		auth = append(auth, ev.EventID())
	}
	raw, _ := json.Marshal(content)
	key := serverKey(t, r.hs3)
	pdu, err := v.NewEventBuilderFromProtoEvent(&gomatrixserverlib.ProtoEvent{
		SenderID: sender, RoomID: roomID, Type: typ, StateKey: &stateKey, Content: raw,
		PrevEvents: prevs, AuthEvents: auth, Depth: depth + 1,
	}).Build(time.Now(), "hs3.test", gomatrixserverlib.KeyID(key.ID), key.Private)
	if err != nil {
		t.Fatal(err)
	}
	return pdu
}
