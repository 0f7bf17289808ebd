package rooms

import (
	"context"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// wantCode fails unless err is the Matrix error code.
func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if m, ok := mxerr.As(err); !ok || m.Code != code {
		t.Fatalf("%s: %v, want %s", what, err, code)
	}
}

// TestReadAccess walks a "shared" room through a member, a former member
// and a stranger, then makes it world-readable: what each may read of
// the state and timeline (ReadAccess, MayReadCurrent) and of single
// events (VisibleEvent), the one answer every client read path uses.
func TestReadAccess(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		e, _, _ := newTestEngine(t, dbURL)
		const alice, bob, carol = "@alice:a.test", "@bob:a.test", "@carol:a.test"
		roomID, err := e.CreateRoom(ctx, CreateRequest{Creator: alice, Preset: PresetPublicChat, Version: "10"})
		if err != nil {
			t.Fatal(err)
		}
		r := &fedRoom{t: t, e: e, roomID: roomID}
		if _, err := e.SetMembership(ctx, MembershipRequest{Sender: bob, RoomID: roomID, Target: bob, Membership: spec.Join}); err != nil {
			t.Fatal(err)
		}
		m1 := r.message()
		leave, err := e.SetMembership(ctx, MembershipRequest{Sender: bob, RoomID: roomID, Target: bob, Membership: spec.Leave})
		if err != nil {
			t.Fatal(err)
		}
		m2 := r.message()
		current := e.Stream().Current()

		ra, err := e.ReadAccess(ctx, roomID, alice)
		if err != nil || !ra.Current || ra.Membership != spec.Join || ra.UpTo(current) != current {
			t.Fatalf("alice: %+v %v, want the current state and timeline", ra, err)
		}
		ra, err = e.ReadAccess(ctx, roomID, bob)
		if err != nil || ra.Current || ra.Membership != spec.Leave || ra.UpTo(current) != leave.StreamPos {
			t.Fatalf("bob: %+v %v, want the room up to his leave at %d", ra, err, leave.StreamPos)
		}
		if m, _ := e.MembershipIn(ctx, ra.State, bob); m != spec.Leave {
			t.Fatalf("bob's readable state has his membership %q, want the state at his leave", m)
		}
		_, err = e.ReadAccess(ctx, roomID, carol)
		wantCode(t, "carol's read access", err, "M_FORBIDDEN")
		_, err = e.ReadAccess(ctx, "!unknown:a.test", alice)
		wantCode(t, "an unknown room", err, "M_FORBIDDEN")
		if err := e.MayReadCurrent(ctx, roomID, alice); err != nil {
			t.Fatalf("alice may not read the room now: %v", err)
		}
		wantCode(t, "bob reading the room now", e.MayReadCurrent(ctx, roomID, bob), "M_FORBIDDEN")
		wantCode(t, "carol reading the room now", e.MayReadCurrent(ctx, roomID, carol), "M_FORBIDDEN")

		for _, tc := range []struct {
			user string
			ev   *Event
			ok   bool
		}{
			{alice, m2, true},
			{bob, m1, true},
			{bob, leave, true},
			{bob, m2, false}, // after his leave
			{carol, m1, false},
		} {
			_, err := e.VisibleEvent(ctx, roomID, tc.ev.EventID(), tc.user)
			if tc.ok && err != nil {
				t.Fatalf("%s cannot see %s: %v", tc.user, tc.ev.Type(), err)
			} else if !tc.ok {
				wantCode(t, tc.user+" seeing an event they may not", err, "M_NOT_FOUND")
			}
		}
		_, err = e.VisibleEvent(ctx, "!other:a.test", m1.EventID(), alice)
		wantCode(t, "an event asked for in another room", err, "M_NOT_FOUND")

		// World-readable: strangers read the room now; a former member's
		// reads still end at their leave (Synapse's order: membership
		// first), but they may ask about the room now.
		r.visibility(WorldReadable)
		ra, err = e.ReadAccess(ctx, roomID, carol)
		if err != nil || !ra.Current {
			t.Fatalf("carol in a world-readable room: %+v %v", ra, err)
		}
		if ra, err = e.ReadAccess(ctx, roomID, bob); err != nil || ra.Current || ra.LeftAt != leave.StreamPos {
			t.Fatalf("bob in a world-readable room: %+v %v, want up to his leave", ra, err)
		}
		if err := e.MayReadCurrent(ctx, roomID, bob); err != nil {
			t.Fatalf("bob may not read the world-readable room now: %v", err)
		}
		if _, err := e.VisibleEvent(ctx, roomID, r.message().EventID(), carol); err != nil {
			t.Fatalf("carol cannot see a world-readable message: %v", err)
		}
	})
}

// TestCanSeeHidesSoftFailed: a soft-failed event is never shown to a
// client, whoever asks and whatever the history visibility (Synapse's
// filter_events_for_client). The receipt handler's copy of the rule
// only refused outliers, so a receipt could point at a soft-failed
// event; both now ask Visibility.
func TestCanSeeHidesSoftFailed(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		e, _, _ := newTestEngine(t, dbURL)
		const alice, bob = "@alice:a.test", "@bob:b.test"
		roomID, err := e.CreateRoom(ctx, CreateRequest{Creator: alice, Preset: PresetPublicChat, Version: "10"})
		if err != nil {
			t.Fatal(err)
		}
		r := &fedRoom{t: t, e: e, roomID: roomID}
		r.message()
		join := r.remoteMember(bob, spec.Join)
		state, _ := e.CurrentState(ctx, roomID)
		auth := e.stateIDs(t, state, roommodel.StateKey{Type: spec.MRoomCreate}, roommodel.StateKey{Type: spec.MRoomPowerLevels},
			roommodel.StateKey{Type: spec.MRoomMember, StateKey: bob})
		if _, err := e.SetMembership(ctx, MembershipRequest{Sender: alice, RoomID: roomID, Target: bob, Membership: spec.Ban}); err != nil {
			t.Fatal(err)
		}
		// bob, banned, sends on the branch before his ban: allowed by its
		// own auth events, refused by the room's current state.
		v, _ := e.RoomVersion(ctx, roomID)
		late := newRemote("b.test").build(t, v, roomID, bob, "m.room.message", nil, map[string]string{"msgtype": "m.text", "body": "late"},
			[]string{join.EventID()}, auth, join.Depth()+1, time.Now())
		ev, err := e.Receive(ctx, late)
		if err != nil || ev.Status != roommodel.SoftFailed {
			t.Fatalf("bob's late message: %+v %v, want soft-failed", ev, err)
		}
		if ok, err := e.VisibilityFor(alice).CanSee(ctx, ev); err != nil || ok {
			t.Fatalf("alice sees a soft-failed event: %v %v", ok, err)
		}
		_, err = e.VisibleEvent(ctx, roomID, ev.EventID(), alice)
		wantCode(t, "a soft-failed event by ID", err, "M_NOT_FOUND")
		r.visibility(WorldReadable)
		if ok, err := e.VisibilityFor("@carol:a.test").CanSee(ctx, ev); err != nil || ok {
			t.Fatalf("a world-readable room shows a soft-failed event: %v %v", ok, err)
		}
	})
}

// TestGuestsMayJoin: only a current m.room.guest_access of can_join lets
// guests in; a room the server does not know has no such state.
func TestGuestsMayJoin(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		e, _, _ := newTestEngine(t, dbURL)
		const alice = "@alice:a.test"
		private, err := e.CreateRoom(ctx, CreateRequest{Creator: alice, Preset: PresetPrivateChat, Version: "10"})
		if err != nil {
			t.Fatal(err)
		}
		public, err := e.CreateRoom(ctx, CreateRequest{Creator: alice, Preset: PresetPublicChat, Version: "10"})
		if err != nil {
			t.Fatal(err)
		}
		check := func(roomID string, want bool) {
			t.Helper()
			if got, err := e.GuestsMayJoin(ctx, roomID); err != nil || got != want {
				t.Fatalf("GuestsMayJoin(%s) = %v %v, want %v", roomID, got, err, want)
			}
		}
		check(private, true) // the private presets allow guests
		check(public, false) // no m.room.guest_access
		check("!unknown:a.test", false)
		if _, err := e.Send(ctx, SendRequest{RoomID: private, Sender: alice, Type: GuestAccessEvent, StateKey: strp(""),
			Content: map[string]string{"guest_access": "forbidden"}}); err != nil {
			t.Fatal(err)
		}
		check(private, false)
	})
}

func TestGuestsCanJoin(t *testing.T) {
	for _, tc := range []struct {
		content string
		want    bool
	}{
		{`{"guest_access":"can_join"}`, true},
		{`{"guest_access":"forbidden"}`, false},
		{`{}`, false},
		{`{"guest_access":"CAN_JOIN"}`, false},
		{`{"guest_access":1}`, false},
		{`not json`, false},
		{``, false},
	} {
		if got := GuestsCanJoin([]byte(tc.content)); got != tc.want {
			t.Errorf("GuestsCanJoin(%s) = %v, want %v", tc.content, got, tc.want)
		}
	}
}
