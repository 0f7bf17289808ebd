package rooms

import (
	"context"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// TestRedactUserEventsSoftFailed: MSC4194's reason to exist. A remote
// spammer, banned, keeps sending on a branch from before the ban; those
// events are soft-failed, no client sees them to redact them one by
// one, and RedactUserEvents redacts them anyway and counts them as
// soft_failed.
func TestRedactUserEventsSoftFailed(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		e, _, _ := newTestEngine(t, dbURL)
		const alice, bob = "@alice:a.test", "@bob:b.test"
		roomID, err := e.CreateRoom(ctx, CreateRequest{Creator: alice, Preset: PresetPublicChat, Version: "10"})
		if err != nil {
			t.Fatal(err)
		}
		r := &fedRoom{t: t, e: e, roomID: roomID}
		own := r.message()
		join := r.remoteMember(bob, spec.Join)
		state, _ := e.CurrentState(ctx, roomID)
		auth := e.stateIDs(t, state, roommodel.StateKey{Type: spec.MRoomCreate}, roommodel.StateKey{Type: spec.MRoomPowerLevels},
			roommodel.StateKey{Type: spec.MRoomMember, StateKey: bob})
		v, _ := e.RoomVersion(ctx, roomID)
		msg := func(body string, depth int64) *Event {
			t.Helper()
			ev, err := e.Receive(ctx, newRemote("b.test").build(t, v, roomID, bob, "m.room.message", nil,
				map[string]string{"msgtype": "m.text", "body": body}, []string{join.EventID()}, auth, depth, time.Now()))
			if err != nil {
				t.Fatal(err)
			}
			return ev
		}
		accepted := msg("before the ban", join.Depth()+1)
		if accepted.Status != roommodel.Accepted {
			t.Fatalf("bob's message before the ban: status %v", accepted.Status)
		}
		if _, err := e.SetMembership(ctx, MembershipRequest{Sender: alice, RoomID: roomID, Target: bob, Membership: spec.Ban}); err != nil {
			t.Fatal(err)
		}
		late := msg("after the ban", join.Depth()+2)
		if late.Status != roommodel.SoftFailed {
			t.Fatalf("bob's late message: status %v, want soft-failed", late.Status)
		}

		res, err := e.RedactUserEvents(ctx, RedactUserRequest{RoomID: roomID, Sender: alice, Target: bob, Reason: "spam", Limit: 25})
		if err != nil || res != (RedactUserResult{Redacted: 2, SoftFailed: 1}) {
			t.Fatalf("redact bob's events: %+v %v, want 2 redacted, 1 soft-failed, no more", res, err)
		}
		evs, err := e.EventsByID(ctx, []string{accepted.EventID(), late.EventID(), own.EventID()})
		if err != nil || len(evs) != 3 {
			t.Fatalf("events: %v %v", evs, err)
		}
		for _, ev := range evs {
			if want := ev.Sender() == bob; (ev.RedactedBy != "") != want {
				t.Fatalf("%s by %s: redacted by %q, want redacted %v", ev.EventID(), ev.Sender(), ev.RedactedBy, want)
			}
		}
		if res, err := e.RedactUserEvents(ctx, RedactUserRequest{RoomID: roomID, Sender: alice, Target: bob, Limit: 25}); err != nil || res != (RedactUserResult{}) {
			t.Fatalf("nothing left: %+v %v", res, err)
		}
	})
}
