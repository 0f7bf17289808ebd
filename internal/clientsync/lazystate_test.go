package clientsync_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/clientevent"
	"github.com/myelin-chat/myelin/internal/clientsync"
	"github.com/myelin-chat/myelin/internal/filter"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// snapshotCounting counts the whole state snapshots the engine loads.
type snapshotCounting struct {
	*store.DB
	loads atomic.Int64
}

func (s *snapshotCounting) LoadSnapshot(ctx context.Context, id int64) (store.Snapshot, error) {
	s.loads.Add(1)
	return s.DB.LoadSnapshot(ctx, id)
}

// TestLazySyncLoadsNoWholeState: an incremental /sync with lazy-loaded
// members answers, with a state cache that holds nothing (rooms of
// 5,000 members at 10,000 users), its timeline senders' memberships
// read key by key: the same state section as the whole state before
// the timeline gives, and no whole snapshot loaded. Each woken /sync
// built that whole state (6 % of the server's CPU at 10,000 users).
func TestLazySyncLoadsNoWholeState(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		db, err := store.Open(ctx, dbURL, 4)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		st := &snapshotCounting{DB: db}
		b := bus.New()
		stream, err := rooms.OpenStream(ctx, db, b)
		if err != nil {
			t.Fatal(err)
		}
		_, priv, _ := ed25519.GenerateKey(nil)
		// A state cache of a byte holds no state.
		engine := rooms.New(st, stream, b, rooms.Options{ServerName: "a.test", KeyID: "ed25519:a", PrivateKey: priv, DefaultVersion: "10", StateCacheBytes: 1})
		svc := clientsync.New(db, engine, clientsync.NewNotifier(stream, db, "a.test", nil), clientevent.Renderer{Loader: engine}, clientsync.Sources{})
		const alice, bob, carol, dave = "@alice:a.test", "@bob:a.test", "@carol:a.test", "@dave:a.test"
		room, err := engine.CreateRoom(ctx, rooms.CreateRequest{Creator: alice, Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		join := func(u string) {
			t.Helper()
			if _, err := engine.SetMembership(ctx, rooms.MembershipRequest{Sender: u, RoomID: room, Target: u, Membership: "join"}); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 20 {
			join(fmt.Sprintf("@m%d:a.test", i))
		}
		join(bob)
		join(carol)
		send := func(u string) *rooms.Event {
			t.Helper()
			ev, err := engine.Send(ctx, rooms.SendRequest{RoomID: room, Sender: u, Type: "m.room.message", Content: map[string]any{"msgtype": "m.text", "body": "hi"}})
			if err != nil {
				t.Fatal(err)
			}
			return ev
		}
		since := clientsync.Token{Events: stream.Current()}
		first := send(bob)
		send(carol)
		join(dave) // a sender whose membership is in the timeline itself
		send(dave)
		send(bob)

		lazy := &filter.Filter{}
		lazy.Room.State.LazyLoadMembers = true
		before := st.loads.Load()
		resp, err := svc.Sync(ctx, clientsync.Request{UserID: alice, Since: &since, Filter: lazy})
		if err != nil {
			t.Fatal(err)
		}
		if n := st.loads.Load() - before; n != 0 {
			t.Fatalf("%d whole snapshots loaded", n)
		}
		r, ok := resp.Rooms.Join[room]
		if !ok || len(r.Timeline.Events) != 5 || r.Timeline.Limited {
			t.Fatalf("timeline: %+v", r.Timeline)
		}
		var got []string
		for _, ev := range r.State.Events {
			got = append(got, ev.EventID)
		}
		// The answer from the whole state before the timeline: the
		// senders' memberships there (dave had none).
		whole, err := engine.StateAt(ctx, first.StateBefore)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, u := range []string{bob, carol, dave} {
			nid, ok := whole[rooms.StateKey{Type: "m.room.member", StateKey: u}]
			if !ok {
				continue
			}
			evs, err := engine.EventsByNID(ctx, []int64{nid})
			if err != nil || len(evs) != 1 {
				t.Fatal(err)
			}
			want = append(want, evs[0].EventID())
		}
		slices.Sort(got)
		slices.Sort(want)
		if len(want) != 2 || !slices.Equal(got, want) {
			t.Fatalf("state: %v, want the memberships of bob and carol %v", got, want)
		}
	})
}
