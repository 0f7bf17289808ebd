package guests

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/roomtest"
	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// fixture is a room engine over a fresh database, with the enforcer on
// its bus.
type fixture struct {
	db     *store.DB
	engine *rooms.Engine
	g      *Enforcer
}

func newFixture(t *testing.T, dbURL string) *fixture {
	t.Helper()
	env := roomtest.New(t, dbURL, "12")
	db, engine := env.DB, env.Engine
	b := env.Bus
	g := New(db, engine, slog.New(slog.NewTextHandler(io.Discard, nil)), b)
	return &fixture{db: db, engine: engine, g: g}
}

func (f *fixture) user(t *testing.T, localpart string, guest bool) string {
	t.Helper()
	id := "@" + localpart + ":hs1.test"
	if err := f.db.CreateUser(context.Background(), store.User{Localpart: localpart, UserID: id, IsGuest: guest}); err != nil {
		t.Fatal(err)
	}
	return id
}

func (f *fixture) setGuestAccess(t *testing.T, roomID, sender, access string) {
	t.Helper()
	empty := ""
	if _, err := f.engine.Send(context.Background(), rooms.SendRequest{RoomID: roomID, Sender: sender, Type: "m.room.guest_access",
		StateKey: &empty, Content: map[string]any{"guest_access": access}}); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) membership(t *testing.T, roomID, userID string) string {
	t.Helper()
	ctx := context.Background()
	state, err := f.engine.CurrentState(ctx, roomID)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := f.engine.StateEvent(ctx, state, spec.MRoomMember, userID)
	if err != nil || ev == nil {
		t.Fatalf("membership of %s: %v", userID, err)
	}
	m, _ := ev.Membership()
	return m
}

func (f *fixture) queued(roomID string) bool {
	f.g.mu.Lock()
	defer f.g.mu.Unlock()
	return f.g.pending[roomID]
}

// TestGuestsLeaveWhenForbidden: once m.room.guest_access stops saying
// can_join, the room's joined guests leave (spec "Guest Access": the
// server MUST), members who are not guests stay; a room that allows
// guests again before the enforcer runs keeps them; other state events
// queue nothing.
func TestGuestsLeaveWhenForbidden(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL)
		ctx := context.Background()
		alice, bob, guest := f.user(t, "alice", false), f.user(t, "bob", false), f.user(t, "guest1", true)
		roomID, err := f.engine.CreateRoom(ctx, rooms.CreateRequest{Creator: alice, Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		f.setGuestAccess(t, roomID, alice, "can_join")
		for _, u := range []string{bob, guest} {
			if _, err := f.engine.SetMembership(ctx, rooms.MembershipRequest{Sender: u, RoomID: roomID, Target: u, Membership: spec.Join}); err != nil {
				t.Fatal(err)
			}
		}
		empty := ""
		if _, err := f.engine.Send(ctx, rooms.SendRequest{RoomID: roomID, Sender: alice, Type: "m.room.topic", StateKey: &empty,
			Content: map[string]any{"topic": "t"}}); err != nil {
			t.Fatal(err)
		}
		if f.queued(roomID) {
			t.Fatal("state other than a forbidding guest_access queued the room")
		}

		// Forbidden, then allowed again before the enforcer runs: stays.
		f.setGuestAccess(t, roomID, alice, "forbidden")
		if !f.queued(roomID) {
			t.Fatal("a forbidding guest_access queued nothing")
		}
		f.setGuestAccess(t, roomID, alice, "can_join")
		if err := f.g.evict(ctx, roomID); err != nil {
			t.Fatal(err)
		}
		if m := f.membership(t, roomID, guest); m != spec.Join {
			t.Fatalf("guest in a room allowing guests again: %s", m)
		}

		f.setGuestAccess(t, roomID, alice, "forbidden")
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { f.g.Run(runCtx); close(done) }()
		deadline := time.Now().Add(10 * time.Second)
		for f.membership(t, roomID, guest) != spec.Leave {
			if time.Now().After(deadline) {
				t.Fatal("the guest never left")
			}
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
		<-done
		for _, u := range []string{alice, bob} {
			if m := f.membership(t, roomID, u); m != spec.Join {
				t.Errorf("%s: %s, want join", u, m)
			}
		}
		if guests, err := f.db.JoinedGuests(ctx, roomID); err != nil || len(guests) != 0 {
			t.Fatalf("joined guests after enforcement: %v %v", guests, err)
		}
	})
}
