package clientapi_test

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/myelin-chat/myelin/internal/presence"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestPresenceRingMatchesStore: every /sync window's presence answer,
// taken from the ring of recent changes and the roommates held in
// memory, is the store's answer, for each viewer and every window of a
// history with shared and unshared rooms, a member who leaves (the cache
// must forget the room), a join after presence changed, the viewer's own
// presence and presence received over federation.
func TestPresenceRingMatchesStore(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		stream := s.Engine().Stream()
		start := stream.Current()
		alice, bob, carol, dave := s.Register("alice", "pw-alice"), s.Register("bob", "pw-bob"),
			s.Register("carol", "pw-carol"), s.Register("dave", "pw-dave")
		set := func(c *mautrix.Client, p event.Presence, msg string) {
			t.Helper()
			if err := c.SetPresence(ctx, mautrix.ReqPresence{Presence: p, StatusMsg: msg}); err != nil {
				t.Fatal(err)
			}
		}
		set(alice, event.PresenceOnline, "early")
		set(bob, event.PresenceUnavailable, "")
		room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := carol.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"}); err != nil {
			t.Fatal(err)
		}
		// The viewers' roommates are cached by polls before the joins.
		compareWindows(ctx, t, s.Presence(), false, start, stream.Current(), alice, bob, carol, dave)
		for _, c := range []*mautrix.Client{bob, dave} {
			if _, err := c.JoinRoom(ctx, room.RoomID.String(), nil); err != nil {
				t.Fatal(err)
			}
		}
		set(carol, event.PresenceOnline, "alone")
		set(dave, event.PresenceOnline, "here")
		edu := json.RawMessage(`{"push":[{"user_id":"@eve:hs2.test","presence":"online","currently_active":true,"last_active_ago":5}]}`)
		if err := s.Presence().HandleEDU(ctx, "hs2.test", edu); err != nil {
			t.Fatal(err)
		}
		compareWindows(ctx, t, s.Presence(), true, start, stream.Current(), alice, bob, carol, dave)
		if _, err := dave.LeaveRoom(ctx, room.RoomID); err != nil {
			t.Fatal(err)
		}
		set(dave, event.PresenceUnavailable, "gone")
		set(alice, event.PresenceOnline, "later")
		set(carol, event.PresenceOffline, "")
		compareWindows(ctx, t, s.Presence(), true, start, stream.Current(), alice, bob, carol, dave)
	})
}

// compareWindows holds Changes to StoredChanges over every window in
// (start, end], and, with shared, requires the ring to have answered some
// of them with another user's presence (the cases the roommates decide).
func compareWindows(ctx context.Context, t *testing.T, p *presence.Service, shared bool, start, end int64, viewers ...*mautrix.Client) {
	t.Helper()
	others := 0
	for _, v := range viewers {
		viewer := string(v.UserID)
		for after := start; after < end; after++ {
			for upto := after + 1; upto <= end; upto++ {
				got, err := p.Changes(ctx, viewer, after, upto)
				if err != nil {
					t.Fatal(err)
				}
				want, err := p.StoredChanges(ctx, viewer, after, upto)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(sansClock(got), sansClock(want)) {
					t.Fatalf("%s (%d, %d]: ring %+v, store %+v", viewer, after, upto, sansClock(got), sansClock(want))
				}
				for _, ev := range got {
					if ev.Sender != viewer {
						others++
					}
				}
			}
		}
	}
	if shared && others == 0 {
		t.Fatal("no window held a roommate's presence")
	}
}

// sansClock drops last_active_ago's value, which is taken from the
// clock at each call, keeping whether it is there.
func sansClock(evs []presence.Event) []presence.Event {
	out := make([]presence.Event, len(evs))
	for i, ev := range evs {
		if ev.Content.LastActiveAgo != nil {
			zero := int64(0)
			ev.Content.LastActiveAgo = &zero
		}
		out[i] = ev
	}
	return out
}
