package directory

import (
	"context"
	"testing"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/testdb"
)

func TestOpenToAll(t *testing.T) {
	for _, tc := range []struct {
		s    Summary
		want bool
	}{
		{Summary{JoinRule: spec.Public}, true},
		{Summary{JoinRule: spec.Knock}, true},
		{Summary{JoinRule: spec.KnockRestricted}, true},
		{Summary{JoinRule: spec.Invite}, false},
		{Summary{JoinRule: spec.Restricted}, false},
		{Summary{JoinRule: spec.Invite, WorldReadable: true}, true},
	} {
		if got := tc.s.OpenToAll(); got != tc.want {
			t.Errorf("%+v.OpenToAll() = %v, want %v", tc.s, got, tc.want)
		}
	}
}

// TestMayView: who may see a room's summary (space hierarchy,
// /room_summary, federation /hierarchy), as Synapse's
// _is_local_room_accessible.
func TestMayView(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		f := newFixture(t, dbURL)
		const bob, carol = "@bob:hs1.test", "@carol:hs1.test"
		public := f.room(t, rooms.CreateRequest{Preset: "public_chat"})
		private := f.room(t, rooms.CreateRequest{Preset: "private_chat", Invite: []string{bob}})
		club := f.room(t, rooms.CreateRequest{Preset: "public_chat"})
		restricted := f.room(t, rooms.CreateRequest{Preset: "private_chat", InitialState: []rooms.StateEvent{
			state(spec.MRoomJoinRules, "", map[string]any{"join_rule": "restricted", "allow": []any{
				map[string]string{"type": "m.room_membership", "room_id": club}}})}})
		if _, err := f.engine.SetMembership(ctx, rooms.MembershipRequest{Sender: carol, RoomID: club, Target: carol, Membership: spec.Join}); err != nil {
			t.Fatal(err)
		}
		describe := func(roomID string) *Room {
			d, err := f.svc.Describe(ctx, roomID)
			if err != nil {
				t.Fatal(err)
			}
			return d
		}
		for _, tc := range []struct {
			name, room, user, membership string
			ok                           bool
		}{
			{"member", private, alice, spec.Join, true},
			{"invited", private, bob, spec.Invite, true},
			{"stranger", private, carol, "", false},
			{"anonymous, public", public, "", "", true},
			{"anonymous, private", private, "", "", false},
			{"in an allowed room", restricted, carol, "", true},
			{"in no allowed room", restricted, bob, "", false},
			{"anonymous, restricted", restricted, "", "", false},
		} {
			m, ok, err := f.svc.UserMayView(ctx, describe(tc.room), tc.user)
			if err != nil || ok != tc.ok || m != tc.membership {
				t.Errorf("%s: UserMayView = %q %v %v, want %q %v", tc.name, m, ok, err, tc.membership, tc.ok)
			}
		}
		for _, tc := range []struct {
			name, room, server string
			ok                 bool
		}{
			{"a member's server", private, "hs1.test", true},
			{"another server, private", private, "other.test", false},
			{"another server, public", public, "other.test", true},
			{"another server, restricted", restricted, "other.test", false},
		} {
			if ok, err := f.svc.ServerMayView(ctx, describe(tc.room), tc.server); err != nil || ok != tc.ok {
				t.Errorf("%s: ServerMayView = %v %v, want %v", tc.name, ok, err, tc.ok)
			}
		}
	})
}
