package receipts

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/roomtest"
	"github.com/myelin-chat/myelin/internal/testdb"
)

func TestThreadOf(t *testing.T) {
	for _, tc := range []struct {
		thread string
		ok     bool
	}{
		{"", true}, {"main", true}, {"$root", true}, {"$", false}, {"Main", false}, {"root", false}, {"!room:hs", false},
	} {
		err := ThreadOf(tc.thread)
		if (err == nil) != tc.ok {
			t.Errorf("ThreadOf(%q) = %v, want ok %v", tc.thread, err, tc.ok)
		}
		if e, isMx := mxerr.As(err); err != nil && (!isMx || e.Code != "M_INVALID_PARAM") {
			t.Errorf("ThreadOf(%q): %v, want M_INVALID_PARAM", tc.thread, err)
		}
	}
}

type marker struct {
	mu    sync.Mutex
	marks []int64
}

func (m *marker) MarkRead(_ context.Context, _, _, _ string, pos int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.marks = append(m.marks, pos)
	return nil
}

type fixture struct {
	engine *rooms.Engine
	svc    *Service
	marker *marker
	local  []Local
	roomID string
	events []*rooms.Event
}

const (
	alice = "@alice:hs1.test"
	bob   = "@bob:hs1.test"
	carol = "@carol:hs1.test"
)

// newFixture: alice's private room with bob in it and three messages;
// carol is in no room.
func newFixture(t *testing.T, dbURL string) *fixture {
	t.Helper()
	ctx := context.Background()
	env := roomtest.New(t, dbURL, "12")
	db, engine := env.DB, env.Engine
	var err error
	f := &fixture{engine: engine, marker: &marker{}}
	b := bus.New()
	f.svc = New(db, engine, f.marker, b)
	f.svc.now = func() time.Time { return time.UnixMilli(42_000) }
	b.Subscribe("federation", func(_ context.Context, c bus.Change) { f.local = append(f.local, c.(Local)) }, TopicLocal)
	if f.roomID, err = engine.CreateRoom(ctx, rooms.CreateRequest{Creator: alice, Preset: "private_chat", Invite: []string{bob}}); err != nil {
		t.Fatal(err)
	}
	if _, err := engine.SetMembership(ctx, rooms.MembershipRequest{Sender: bob, RoomID: f.roomID, Target: bob, Membership: spec.Join}); err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{"one", "two", "three"} {
		ev, err := engine.Send(ctx, rooms.SendRequest{RoomID: f.roomID, Sender: alice, Type: "m.room.message", Content: map[string]any{"body": body}})
		if err != nil {
			t.Fatal(err)
		}
		f.events = append(f.events, ev)
	}
	return f
}

// content is m.receipt content: event ID -> type -> user -> data.
type content map[string]map[string]map[string]map[string]any

func (f *fixture) forSync(t *testing.T, viewer string, after int64) content {
	t.Helper()
	raw, err := f.svc.ForSync(context.Background(), viewer, f.roomID, after, f.engine.Stream().Current())
	if err != nil {
		t.Fatal(err)
	}
	if raw == nil {
		return nil
	}
	var c content
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if e, ok := mxerr.As(err); !ok || e.Code != code {
		t.Fatalf("%s: %v, want %s", what, err, code)
	}
}

// TestPutChecks: unknown receipt types, unknown events, events of
// another room and events the user may not see are refused, and nothing
// is stored.
func TestPutChecks(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL)
		ctx := context.Background()
		ev := f.events[0].EventID()
		wantCode(t, "unknown type", f.svc.Put(ctx, f.roomID, bob, "m.fully_read", ev, ""), "M_INVALID_PARAM")
		wantCode(t, "unknown event", f.svc.Put(ctx, f.roomID, bob, Read, "$nope", ""), "M_NOT_FOUND")
		wantCode(t, "another room", f.svc.Put(ctx, "!other:hs1.test", bob, Read, ev, ""), "M_NOT_FOUND")
		// carol is not in the private room: its events are hidden from her.
		wantCode(t, "invisible event", f.svc.Put(ctx, f.roomID, carol, Read, ev, ""), "M_NOT_FOUND")
		if c := f.forSync(t, alice, 0); c != nil {
			t.Fatalf("refused receipts were stored: %v", c)
		}
		if len(f.marker.marks) != 0 || len(f.local) != 0 {
			t.Fatalf("refused receipts were passed on: %v %v", f.marker.marks, f.local)
		}
	})
}

// TestReceiptsMoveForward: a receipt for an older event than the user's
// current one is accepted and ignored (Synapse); a newer one replaces
// it. Each stored receipt of the user's own resets their unread counts,
// and only public ones go to federation.
func TestReceiptsMoveForward(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL)
		ctx := context.Background()
		e1, e2, e3 := f.events[0], f.events[1], f.events[2]
		if err := f.svc.Put(ctx, f.roomID, bob, Read, e2.EventID(), ""); err != nil {
			t.Fatal(err)
		}
		if err := f.svc.Put(ctx, f.roomID, bob, Read, e1.EventID(), ""); err != nil {
			t.Fatalf("an older receipt: %v, want accepted", err)
		}
		c := f.forSync(t, alice, 0)
		if c[e2.EventID()][Read][bob] == nil || c[e1.EventID()] != nil {
			t.Fatalf("after an older receipt: %v", c)
		}
		if ts := c[e2.EventID()][Read][bob]["ts"]; ts != float64(42_000) {
			t.Fatalf("ts %v", ts)
		}
		if err := f.svc.Put(ctx, f.roomID, bob, Read, e3.EventID(), ""); err != nil {
			t.Fatal(err)
		}
		if c = f.forSync(t, alice, 0); c[e3.EventID()][Read][bob] == nil || c[e2.EventID()] != nil {
			t.Fatalf("after a newer receipt: %v", c)
		}
		if want := []int64{e2.StreamPos, e3.StreamPos}; len(f.marker.marks) != 2 || f.marker.marks[0] != want[0] || f.marker.marks[1] != want[1] {
			t.Fatalf("unread counts reset at %v, want %v", f.marker.marks, want)
		}
		if len(f.local) != 2 {
			t.Fatalf("%d receipts federated, want 2", len(f.local))
		}

		// A private receipt is its own line: not federated, seen only by
		// its owner; a threaded one carries its thread_id.
		if err := f.svc.Put(ctx, f.roomID, bob, ReadPrivate, e1.EventID(), ""); err != nil {
			t.Fatal(err)
		}
		if err := f.svc.Put(ctx, f.roomID, alice, Read, e1.EventID(), e1.EventID()); err != nil {
			t.Fatal(err)
		}
		if len(f.local) != 3 {
			t.Fatalf("%d receipts federated, want 3 (the private one is not)", len(f.local))
		}
		if c = f.forSync(t, alice, 0); c[e1.EventID()][ReadPrivate] != nil {
			t.Fatalf("alice sees bob's private receipt: %v", c)
		}
		if th := c[e1.EventID()][Read][alice]["thread_id"]; th != e1.EventID() {
			t.Fatalf("thread_id %v", th)
		}
		if c = f.forSync(t, bob, 0); c[e1.EventID()][ReadPrivate][bob] == nil {
			t.Fatalf("bob does not see his own private receipt: %v", c)
		}
	})
}

// TestForSyncWindow: an incremental sync gets only receipts after its
// position; nothing new is nil.
func TestForSyncWindow(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL)
		ctx := context.Background()
		if err := f.svc.Put(ctx, f.roomID, bob, Read, f.events[0].EventID(), ""); err != nil {
			t.Fatal(err)
		}
		since := f.engine.Stream().Current()
		if c := f.forSync(t, alice, since); c != nil {
			t.Fatalf("nothing new since %d: %v", since, c)
		}
		if err := f.svc.Put(ctx, f.roomID, alice, Read, f.events[1].EventID(), ""); err != nil {
			t.Fatal(err)
		}
		c := f.forSync(t, bob, since)
		if len(c) != 1 || c[f.events[1].EventID()][Read][alice] == nil {
			t.Fatalf("incremental: %v", c)
		}
		// A private receipt of someone else is all that changed: nil, not {}.
		since = f.engine.Stream().Current()
		if err := f.svc.Put(ctx, f.roomID, alice, ReadPrivate, f.events[2].EventID(), ""); err != nil {
			t.Fatal(err)
		}
		if c := f.forSync(t, bob, since); c != nil {
			t.Fatalf("bob's incremental with only alice's private receipt: %v", c)
		}
	})
}

// TestPutRemote: another server's receipt is stored even for an event
// this server lacks, and, for an event it has, only moving forward.
func TestPutRemote(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		f := newFixture(t, dbURL)
		ctx := context.Background()
		const remote = "@dave:hs2.test"
		if err := f.svc.PutRemote(ctx, f.roomID, remote, "$unknown", "", 5); err != nil {
			t.Fatal(err)
		}
		if c := f.forSync(t, alice, 0); c["$unknown"][Read][remote]["ts"] != float64(5) {
			t.Fatalf("receipt for an unknown event: %v", c)
		}
		if err := f.svc.PutRemote(ctx, f.roomID, remote, f.events[2].EventID(), "", 6); err != nil {
			t.Fatal(err)
		}
		if err := f.svc.PutRemote(ctx, f.roomID, remote, f.events[0].EventID(), "", 7); err != nil {
			t.Fatal(err)
		}
		c := f.forSync(t, alice, 0)
		if c[f.events[2].EventID()][Read][remote] == nil || c[f.events[0].EventID()] != nil {
			t.Fatalf("remote receipts moved backwards: %v", c)
		}
		if len(f.local) != 0 || len(f.marker.marks) != 0 {
			t.Fatal("a remote receipt was federated back or reset local counts")
		}
	})
}
