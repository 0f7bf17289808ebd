package clientapi_test

import (
	"context"
	"net/http"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// jrCreate creates a room from a raw createRoom body.
func jrCreate(t *testing.T, cli *mautrix.Client, body map[string]any) id.RoomID {
	t.Helper()
	var resp struct {
		RoomID id.RoomID `json:"room_id"`
	}
	if _, err := cli.MakeRequest(context.Background(), http.MethodPost, cli.BuildClientURL("v3", "createRoom"), body, &resp); err != nil {
		t.Fatalf("createRoom %v: %v", body, err)
	}
	return resp.RoomID
}

// jrRoom creates a private room of a version with a join rule.
func jrRoom(t *testing.T, cli *mautrix.Client, version string, joinRules map[string]any, extra map[string]any) id.RoomID {
	t.Helper()
	body := map[string]any{"preset": "private_chat", "room_version": version,
		"initial_state": []map[string]any{{"type": "m.room.join_rules", "state_key": "", "content": joinRules}}}
	for k, v := range extra {
		body[k] = v
	}
	return jrCreate(t, cli, body)
}

// jrMember reads a user's m.room.member content.
func jrMember(t *testing.T, cli *mautrix.Client, roomID id.RoomID, userID id.UserID) map[string]any {
	t.Helper()
	var content map[string]any
	if err := cli.StateEvent(context.Background(), roomID, event.StateMember, userID.String(), &content); err != nil {
		t.Fatalf("member state of %s in %s: %v", userID, roomID, err)
	}
	return content
}

func jrJoined(t *testing.T, cli *mautrix.Client, roomID id.RoomID) bool {
	t.Helper()
	resp, err := cli.JoinedRooms(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range resp.JoinedRooms {
		if r == roomID {
			return true
		}
	}
	return false
}

func restrictedRule(rule string, roomID id.RoomID) map[string]any {
	return map[string]any{"join_rule": rule, "allow": []map[string]any{{"type": "m.room_membership", "room_id": roomID}}}
}

// TestJoinRulesRestricted: a room restricted to the members of another
// lets those members join through POST /join, with their join authorised
// by a local member who may invite; others get 403; room versions
// before 8 know no restricted rule.
func TestJoinRulesRestricted(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice, bob, carol, dave := s.Register("alice", "pw"), s.Register("bob", "pw"), s.Register("carol", "pw"), s.Register("dave", "pw")

		a := jrCreate(t, alice, map[string]any{"preset": "private_chat", "invite": []string{bob.UserID.String()}})
		if _, err := bob.JoinRoomByID(ctx, a); err != nil {
			t.Fatal(err)
		}

		for _, version := range []string{"8", "12"} {
			t.Run("v"+version, func(t *testing.T) {
				b := jrRoom(t, alice, version, restrictedRule("restricted", a), map[string]any{"power_level_content_override": map[string]any{"invite": 50}})
				// dave is a member without invite power: he may not authorise.
				if _, err := alice.InviteUser(ctx, b, &mautrix.ReqInviteUser{UserID: dave.UserID}); err != nil {
					t.Fatal(err)
				}
				if _, err := dave.JoinRoomByID(ctx, b); err != nil {
					t.Fatalf("invited dave joins: %v", err)
				}

				resp, err := bob.JoinRoom(ctx, b.String(), nil)
				if err != nil {
					t.Fatalf("bob, a member of the allowed room, joins: %v", err)
				}
				if resp.RoomID != b {
					t.Fatalf("join returned room_id %s, want %s", resp.RoomID, b)
				}
				m := jrMember(t, alice, b, bob.UserID)
				if m["membership"] != "join" || m["join_authorised_via_users_server"] != alice.UserID.String() {
					t.Fatalf("bob's join %v: want membership join authorised via %s", m, alice.UserID)
				}
				if !jrJoined(t, bob, b) {
					t.Fatal("bob's joined_rooms lacks the restricted room")
				}

				_, err = carol.JoinRoom(ctx, b.String(), nil)
				testserver.WantHTTPError(t, "carol, not in the allowed room, joins", err, http.StatusForbidden, "M_FORBIDDEN")
				_, err = carol.JoinRoomByID(ctx, b)
				testserver.WantHTTPError(t, "carol joins through /rooms/{id}/join", err, http.StatusForbidden, "M_FORBIDDEN")
				if jrJoined(t, carol, b) {
					t.Fatal("carol joined a room restricted to a room she is not in")
				}
			})
		}

		// A room restricted to rooms this server is not in: no one here
		// can tell, and without federation no one else is asked. The
		// client sees M_FORBIDDEN, not the M_UNABLE code make_join gives
		// joining servers.
		t.Run("allowed room unknown", func(t *testing.T) {
			b := jrRoom(t, alice, "10", restrictedRule("restricted", "!elsewhere:hs9.test"), nil)
			_, err := bob.JoinRoom(ctx, b.String(), nil)
			testserver.WantHTTPError(t, "join of a room restricted to an unknown room", err, http.StatusForbidden, "M_FORBIDDEN")
		})

		t.Run("v7", func(t *testing.T) {
			b := jrRoom(t, alice, "7", restrictedRule("restricted", a), nil)
			_, err := bob.JoinRoom(ctx, b.String(), nil)
			testserver.WantHTTPError(t, "restricted join in a v7 room", err, http.StatusForbidden, "M_FORBIDDEN")
		})
	})
}

// TestJoinRulesKnock: knocking on a knock room (v7+) puts it in the
// knocker's sync under rooms.knock with its knock_state; a member with
// the invite level invites them (one without may not) and they join.
// Knocking on public or invite-only rooms, or before v7, is refused.
func TestJoinRulesKnock(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice, bob, carol, dave := s.Register("alice", "pw"), s.Register("bob", "pw"), s.Register("carol", "pw"), s.Register("dave", "pw")

		for _, version := range []string{"7", "12"} {
			t.Run("v"+version, func(t *testing.T) {
				k := jrRoom(t, alice, version, map[string]any{"join_rule": "knock"}, map[string]any{
					"name": "Knock here", "invite": []string{dave.UserID.String()},
					"power_level_content_override": map[string]any{"invite": 50},
				})
				if _, err := dave.JoinRoomByID(ctx, k); err != nil {
					t.Fatal(err)
				}
				since, err := bob.SyncRequest(ctx, 0, "", "", false, "")
				if err != nil {
					t.Fatal(err)
				}

				resp, err := bob.KnockRoom(ctx, k.String(), &mautrix.ReqKnockRoom{Reason: "let me in"})
				if err != nil {
					t.Fatalf("knock: %v", err)
				}
				if resp.RoomID != k {
					t.Fatalf("knock returned room_id %s, want %s", resp.RoomID, k)
				}
				if m := jrMember(t, alice, k, bob.UserID); m["membership"] != "knock" || m["reason"] != "let me in" {
					t.Fatalf("bob's membership after knocking: %v", m)
				}

				// Initial and incremental syncs show the knock with its stripped state.
				initial, err := bob.SyncRequest(ctx, 0, "", "", false, "")
				if err != nil {
					t.Fatal(err)
				}
				incr, err := bob.SyncRequest(ctx, 0, since.NextBatch, "", false, "")
				if err != nil {
					t.Fatal(err)
				}
				for name, sync := range map[string]*mautrix.RespSync{"initial": initial, "incremental": incr} {
					kr, ok := sync.Rooms.Knock[k]
					if !ok {
						t.Fatalf("%s sync: no rooms.knock entry for %s: %+v", name, k, sync.Rooms)
					}
					if _, joined := sync.Rooms.Join[k]; joined {
						t.Fatalf("%s sync: knocked room listed as joined", name)
					}
					var rule, roomName, own string
					for _, ev := range kr.State.Events {
						_ = ev.Content.ParseRaw(ev.Type)
						switch ev.Type {
						case event.StateJoinRules:
							rule = string(ev.Content.AsJoinRules().JoinRule)
						case event.StateRoomName:
							roomName = ev.Content.AsRoomName().Name
						case event.StateMember:
							if ev.GetStateKey() == bob.UserID.String() {
								own = string(ev.Content.AsMember().Membership)
							}
						}
					}
					if rule != "knock" || roomName != "Knock here" || own != "knock" {
						t.Fatalf("%s sync knock_state: join_rule %q, name %q, own membership %q", name, rule, roomName, own)
					}
				}

				// dave, below the invite level, may not let bob in; alice may.
				_, err = dave.InviteUser(ctx, k, &mautrix.ReqInviteUser{UserID: bob.UserID})
				testserver.WantHTTPError(t, "invite below the invite level", err, http.StatusForbidden, "M_FORBIDDEN")
				// A knock is no invite: bob cannot join yet.
				_, err = bob.JoinRoomByID(ctx, k)
				testserver.WantHTTPError(t, "knocker joins uninvited", err, http.StatusForbidden, "M_FORBIDDEN")
				if _, err := alice.InviteUser(ctx, k, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
					t.Fatalf("alice invites the knocker: %v", err)
				}
				if _, err := bob.JoinRoomByID(ctx, k); err != nil {
					t.Fatalf("invited knocker joins: %v", err)
				}
				if !jrJoined(t, bob, k) {
					t.Fatal("bob is not joined after his invite")
				}
				_, err = bob.KnockRoom(ctx, k.String(), nil)
				testserver.WantHTTPError(t, "knock by a joined user", err, http.StatusForbidden, "M_FORBIDDEN")

				// A knock can be withdrawn.
				if _, err := carol.KnockRoom(ctx, k.String(), nil); err != nil {
					t.Fatal(err)
				}
				if _, err := carol.LeaveRoom(ctx, k); err != nil {
					t.Fatalf("withdraw a knock: %v", err)
				}
				if m := jrMember(t, alice, k, carol.UserID); m["membership"] != "leave" {
					t.Fatalf("carol after withdrawing: %v", m)
				}
			})
		}

		public := jrCreate(t, alice, map[string]any{"preset": "public_chat"})
		_, err := carol.KnockRoom(ctx, public.String(), nil)
		testserver.WantHTTPError(t, "knock on a public room", err, http.StatusForbidden, "M_FORBIDDEN")
		private := jrCreate(t, alice, map[string]any{"preset": "private_chat"})
		_, err = carol.KnockRoom(ctx, private.String(), nil)
		testserver.WantHTTPError(t, "knock on an invite-only room", err, http.StatusForbidden, "M_FORBIDDEN")
		v6 := jrRoom(t, alice, "6", map[string]any{"join_rule": "knock"}, nil)
		_, err = carol.KnockRoom(ctx, v6.String(), nil)
		testserver.WantHTTPError(t, "knock in a v6 room", err, http.StatusForbidden, "M_FORBIDDEN")
		if m, err := carol.SyncRequest(ctx, 0, "", "", false, ""); err != nil || len(m.Rooms.Knock) != 0 {
			t.Fatalf("refused knocks in carol's sync: %+v %v", m.Rooms.Knock, err)
		}
	})
}

// TestJoinRulesKnockRestricted: knock_restricted (v10+) lets members of
// the allowed room join directly and anyone else knock; v9 knows no such
// rule and refuses both.
func TestJoinRulesKnockRestricted(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice, bob, carol := s.Register("alice", "pw"), s.Register("bob", "pw"), s.Register("carol", "pw")
		a := jrCreate(t, alice, map[string]any{"preset": "private_chat", "invite": []string{bob.UserID.String()}})
		if _, err := bob.JoinRoomByID(ctx, a); err != nil {
			t.Fatal(err)
		}
		for _, version := range []string{"10", "12"} {
			t.Run("v"+version, func(t *testing.T) {
				kr := jrRoom(t, alice, version, restrictedRule("knock_restricted", a), nil)
				if _, err := bob.JoinRoom(ctx, kr.String(), nil); err != nil {
					t.Fatalf("member of the allowed room joins: %v", err)
				}
				if m := jrMember(t, alice, kr, bob.UserID); m["join_authorised_via_users_server"] != alice.UserID.String() {
					t.Fatalf("bob's join %v: want it authorised via %s", m, alice.UserID)
				}
				_, err := carol.JoinRoom(ctx, kr.String(), nil)
				testserver.WantHTTPError(t, "non-member joins a knock_restricted room", err, http.StatusForbidden, "M_FORBIDDEN")
				if _, err := carol.KnockRoom(ctx, kr.String(), &mautrix.ReqKnockRoom{Reason: "hi"}); err != nil {
					t.Fatalf("knock on knock_restricted: %v", err)
				}
				if _, err := alice.InviteUser(ctx, kr, &mautrix.ReqInviteUser{UserID: carol.UserID}); err != nil {
					t.Fatal(err)
				}
				if _, err := carol.JoinRoomByID(ctx, kr); err != nil {
					t.Fatalf("invited knocker joins: %v", err)
				}
			})
		}
		t.Run("v9", func(t *testing.T) {
			kr := jrRoom(t, alice, "9", restrictedRule("knock_restricted", a), nil)
			_, err := bob.JoinRoom(ctx, kr.String(), nil)
			testserver.WantHTTPError(t, "knock_restricted join in v9", err, http.StatusForbidden, "M_FORBIDDEN")
			_, err = carol.KnockRoom(ctx, kr.String(), nil)
			testserver.WantHTTPError(t, "knock_restricted knock in v9", err, http.StatusForbidden, "M_FORBIDDEN")
		})
	})
}

// TestMembershipPowerChecks: kicks, bans and unbans need their power
// levels and a level above the target's (an unban the kick level too);
// the reason is kept in the membership content; inviting an unknown
// local user is a 404.
func TestMembershipPowerChecks(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice, bob, carol, mod := s.Register("alice", "pw"), s.Register("bob", "pw"), s.Register("carol", "pw"), s.Register("mod", "pw")
		room := jrCreate(t, alice, map[string]any{"preset": "public_chat",
			"power_level_content_override": map[string]any{"users": map[string]int{mod.UserID.String(): 50}}})
		for _, c := range []*mautrix.Client{bob, carol, mod} {
			if _, err := c.JoinRoomByID(ctx, room); err != nil {
				t.Fatal(err)
			}
		}

		_, err := bob.KickUser(ctx, room, &mautrix.ReqKickUser{UserID: carol.UserID})
		testserver.WantHTTPError(t, "kick below the kick level", err, http.StatusForbidden, "M_FORBIDDEN")
		_, err = bob.BanUser(ctx, room, &mautrix.ReqBanUser{UserID: carol.UserID})
		testserver.WantHTTPError(t, "ban below the ban level", err, http.StatusForbidden, "M_FORBIDDEN")
		_, err = mod.KickUser(ctx, room, &mautrix.ReqKickUser{UserID: alice.UserID})
		testserver.WantHTTPError(t, "kick of a higher user", err, http.StatusForbidden, "M_FORBIDDEN")
		_, err = mod.BanUser(ctx, room, &mautrix.ReqBanUser{UserID: alice.UserID})
		testserver.WantHTTPError(t, "ban of a higher user", err, http.StatusForbidden, "M_FORBIDDEN")
		if m := jrMember(t, alice, room, carol.UserID); m["membership"] != "join" {
			t.Fatalf("carol after refused kick and ban: %v", m)
		}

		if _, err := mod.KickUser(ctx, room, &mautrix.ReqKickUser{UserID: carol.UserID, Reason: "spam"}); err != nil {
			t.Fatalf("kick: %v", err)
		}
		if m := jrMember(t, alice, room, carol.UserID); m["membership"] != "leave" || m["reason"] != "spam" {
			t.Fatalf("carol after the kick: %v", m)
		}
		if _, err := carol.JoinRoomByID(ctx, room); err != nil {
			t.Fatalf("rejoin after a kick: %v", err)
		}
		if _, err := mod.BanUser(ctx, room, &mautrix.ReqBanUser{UserID: carol.UserID, Reason: "again"}); err != nil {
			t.Fatalf("ban: %v", err)
		}
		if m := jrMember(t, alice, room, carol.UserID); m["membership"] != "ban" || m["reason"] != "again" {
			t.Fatalf("carol after the ban: %v", m)
		}
		_, err = carol.JoinRoomByID(ctx, room)
		testserver.WantHTTPError(t, "banned user joins", err, http.StatusForbidden, "M_FORBIDDEN")
		_, err = bob.UnbanUser(ctx, room, &mautrix.ReqUnbanUser{UserID: carol.UserID})
		testserver.WantHTTPError(t, "unban below the ban level", err, http.StatusForbidden, "M_FORBIDDEN")
		if _, err := mod.UnbanUser(ctx, room, &mautrix.ReqUnbanUser{UserID: carol.UserID, Reason: "forgiven"}); err != nil {
			t.Fatalf("unban: %v", err)
		}
		if m := jrMember(t, alice, room, carol.UserID); m["membership"] != "leave" || m["reason"] != "forgiven" {
			t.Fatalf("carol after the unban: %v", m)
		}
		if _, err := carol.JoinRoomByID(ctx, room); err != nil {
			t.Fatalf("join after the unban: %v", err)
		}

		_, err = mod.UnbanUser(ctx, room, &mautrix.ReqUnbanUser{UserID: bob.UserID})
		testserver.WantHTTPError(t, "unban of a user who is not banned", err, http.StatusForbidden, "M_FORBIDDEN")
		_, err = mod.KickUser(ctx, room, &mautrix.ReqKickUser{UserID: id.UserID(s.UserID("nobody"))})
		testserver.WantHTTPError(t, "kick of a user not in the room", err, http.StatusForbidden, "M_FORBIDDEN")
		_, err = alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: id.UserID(s.UserID("nobody"))})
		testserver.WantHTTPError(t, "invite of an unknown local user", err, http.StatusNotFound, "M_NOT_FOUND")

		// An unban is a kick of a banned user: it needs the kick level too.
		strict := jrCreate(t, alice, map[string]any{"preset": "public_chat",
			"power_level_content_override": map[string]any{"users": map[string]int{mod.UserID.String(): 50}, "kick": 75}})
		for _, c := range []*mautrix.Client{carol, mod} {
			if _, err := c.JoinRoomByID(ctx, strict); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := mod.BanUser(ctx, strict, &mautrix.ReqBanUser{UserID: carol.UserID}); err != nil {
			t.Fatalf("ban at the ban level: %v", err)
		}
		_, err = mod.UnbanUser(ctx, strict, &mautrix.ReqUnbanUser{UserID: carol.UserID})
		testserver.WantHTTPError(t, "unban below the kick level", err, http.StatusForbidden, "M_FORBIDDEN")
		if m := jrMember(t, alice, strict, carol.UserID); m["membership"] != "ban" {
			t.Fatalf("carol after a refused unban: %v", m)
		}
	})
}
