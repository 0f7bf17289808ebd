package rooms

import (
	"context"
	"fmt"
	"testing"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/cache"
	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// snapshotCountingStore counts whole snapshot deltas loaded.
type snapshotCountingStore struct {
	Store
	loads int
}

func (s *snapshotCountingStore) LoadSnapshot(ctx context.Context, id int64) (store.Snapshot, error) {
	s.loads++
	return s.Store.LoadSnapshot(ctx, id)
}

// TestVisibilityReadsTwoStateKeys: the history visibility check and
// unsigned.membership read the keys they need of the state at an event
// (stateKeyAt), with the answers the whole state gives, and load no
// whole snapshot when the state cache does not hold it: at 10,000 users
// rebuilding the state of rooms of 5,000 members for each woken /sync
// was 8-9 % of the server's CPU.
func TestVisibilityReadsTwoStateKeys(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		e, _, _ := newTestEngine(t, dbURL)
		const alice, bob, carol, dan = "@alice:a.test", "@bob:a.test", "@carol:a.test", "@dan:a.test"
		roomID, err := e.CreateRoom(ctx, CreateRequest{Creator: alice, Preset: PresetPublicChat, Version: "10"})
		if err != nil {
			t.Fatal(err)
		}
		r := &fedRoom{t: t, e: e, roomID: roomID}
		join := func(u string) *Event {
			ev, err := e.SetMembership(ctx, MembershipRequest{Sender: u, RoomID: roomID, Target: u, Membership: spec.Join})
			if err != nil {
				t.Fatal(err)
			}
			return ev
		}
		var evs []*Event
		for i := range 20 {
			evs = append(evs, join(fmt.Sprintf("@m%d:a.test", i)))
		}
		evs = append(evs, join(bob), r.message())
		r.visibility(Joined)
		evs = append(evs, r.message(), join(carol), r.message())
		leave, err := e.SetMembership(ctx, MembershipRequest{Sender: bob, RoomID: roomID, Target: bob, Membership: spec.Leave})
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, leave, r.message())
		r.visibility(Shared)
		evs = append(evs, r.message())

		type answer struct {
			see        bool
			membership string
		}
		check := func() map[string]answer {
			out := map[string]answer{}
			for _, u := range []string{alice, bob, carol, dan} {
				vis := e.VisibilityFor(u)
				for i, ev := range evs {
					ok, err := vis.CanSee(ctx, ev)
					if err != nil {
						t.Fatal(err)
					}
					m, err := e.MembershipAfter(ctx, ev, u)
					if err != nil {
						t.Fatal(err)
					}
					out[fmt.Sprintf("%s %d", u, i)] = answer{ok, m}
				}
			}
			return out
		}
		// The answers from whole states, built before the change.
		want := map[string]answer{}
		for _, u := range []string{alice, bob, carol, dan} {
			for i, ev := range evs {
				want[fmt.Sprintf("%s %d", u, i)] = referenceAnswer(t, e, ev, u)
			}
		}
		// Cold caches, as at 10,000 users.
		e.snapshots = cache.NewLRU[int64, StateMap](defaultStateCacheBytesForTest)
		e.stateKeys = cache.NewLRU[snapshotKey, int64](stateKeysCacheBytes)
		counting := &snapshotCountingStore{Store: e.store}
		e.store = counting
		got := check()
		for k, w := range want {
			if got[k] != w {
				t.Errorf("%s: %+v, want %+v", k, got[k], w)
			}
		}
		if counting.loads != 0 {
			t.Fatalf("%d whole snapshots loaded", counting.loads)
		}
		// Each snapshot key is asked of the database once.
		if again := check(); fmt.Sprint(again) != fmt.Sprint(got) {
			t.Fatal("cached answers differ")
		}
	})
}

// defaultStateCacheBytesForTest is a state cache big enough for the test.
const defaultStateCacheBytesForTest = 4 << 20

// referenceAnswer is what CanSee and MembershipAfter decide from the
// whole state at the event (snapshotState), the rules written out.
func referenceAnswer(t *testing.T, e *Engine, ev *Event, u string) (a struct {
	see        bool
	membership string
}) {
	t.Helper()
	ctx := context.Background()
	at := func(snap int64) (hv, m string) {
		state, err := e.snapshotState(ctx, snap)
		if err != nil {
			t.Fatal(err)
		}
		hv = Shared
		if hvEv, _ := e.StateEvent(ctx, state, spec.MRoomHistoryVisibility, ""); hvEv != nil {
			if v, err := hvEv.HistoryVisibility(); err == nil {
				hv = string(v)
			}
		}
		m, _ = e.MembershipIn(ctx, state, u)
		return hv, m
	}
	seesAt := func(snap int64) bool {
		hv, m := at(snap)
		switch {
		case hv == WorldReadable || m == spec.Join:
			return true
		case hv == Invited && m == spec.Invite:
			return true
		case hv == Shared:
			cur, _ := e.MembershipOf(ctx, ev.RoomID().String(), u)
			last, _ := e.store.LastJoinPos(ctx, ev.RoomID().String(), u)
			return cur == spec.Join || last > ev.StreamPos
		}
		return false
	}
	own := ev.Type() == spec.MRoomMember && *ev.StateKey() == u
	hvChange := ev.Type() == spec.MRoomHistoryVisibility && ev.StateAfter != ev.StateBefore
	a.see = seesAt(ev.StateBefore) || ((own || hvChange) && seesAt(ev.StateAfter))
	if own {
		a.membership, _ = ev.Membership()
	} else if _, a.membership = at(ev.StateAfter); a.membership == "" {
		a.membership = spec.Leave
	}
	return a
}
