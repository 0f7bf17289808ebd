package rooms

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/cache"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// nopBus records notifications; rooms of parallel subtests share it.
type nopBus struct {
	mu  sync.Mutex
	got []Notification
}

func (b *nopBus) Publish(n Notification) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.got = append(b.got, n)
}

// newTestEngine makes an engine on a fresh database for server "a.test".
func newTestEngine(t *testing.T, dbURL string) (*Engine, *store.DB, *nopBus) {
	t.Helper()
	db, err := store.Open(context.Background(), dbURL, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	got := &nopBus{}
	b := bus.New()
	b.Subscribe("test", func(_ context.Context, c bus.Change) { got.Publish(c.(Notification)) }, TopicEvent)
	return newEngineOn(t, db, db, b), db, got
}

// newEngineOn is a fresh engine for a.test on db (as after a restart),
// reading and writing through st: db itself or a store wrapping it.
func newEngineOn(t *testing.T, db *store.DB, st Store, b bus.Bus) *Engine {
	t.Helper()
	stream, err := OpenStream(context.Background(), db, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(nil)
	return New(st, stream, b, Options{ServerName: "a.test", KeyID: "ed25519:a", PrivateKey: priv, DefaultVersion: "10"})
}

// remote builds events as another server would, signed with its own key.
type remote struct {
	server string
	key    ed25519.PrivateKey
}

func newRemote(server string) remote {
	_, priv, _ := ed25519.GenerateKey(nil)
	return remote{server: server, key: priv}
}

func (r remote) build(t *testing.T, v gomatrixserverlib.IRoomVersion, roomID, sender, typ string, stateKey *string,
	content any, prevs, auth []string, depth int64, ts time.Time) gomatrixserverlib.PDU {
	t.Helper()
	raw, _ := json.Marshal(content)
	b := v.NewEventBuilderFromProtoEvent(&gomatrixserverlib.ProtoEvent{
		SenderID: sender, RoomID: roomID, Type: typ, StateKey: stateKey, Content: raw,
		PrevEvents: prevs, AuthEvents: auth, Depth: depth,
	})
	pdu, err := b.Build(ts, spec.ServerName(r.server), "ed25519:r", r.key)
	if err != nil {
		t.Fatalf("build %s: %v", typ, err)
	}
	return pdu
}

func strp(s string) *string { return &s }

// stateIDs returns the event IDs a state selects for some keys.
func (e *Engine) stateIDs(t *testing.T, state StateMap, keys ...roommodel.StateKey) []string {
	t.Helper()
	evs, err := e.StateEvents(context.Background(), state, keys...)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range keys {
		if ev, ok := evs[k]; ok {
			out = append(out, ev.EventID())
		}
	}
	return out
}

// TestStateResolutionConflictingBranches forks a room: one branch demotes
// bob, the other (concurrently) has bob change the topic. State
// resolution v2 applies power events first, so bob's topic fails against
// the resolved power levels and the topic stays what it was.
func TestStateResolutionConflictingBranches(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		e, _, _ := newTestEngine(t, dbURL)
		roomID, err := e.CreateRoom(ctx, CreateRequest{Creator: "@alice:a.test", Preset: PresetPublicChat, Version: "10"})
		if err != nil {
			t.Fatal(err)
		}
		v, _ := e.RoomVersion(ctx, roomID)
		b := newRemote("b.test")
		topic0, err := e.Send(ctx, SendRequest{RoomID: roomID, Sender: "@alice:a.test", Type: "m.room.topic", StateKey: strp(""), Content: map[string]string{"topic": "original"}})
		if err != nil {
			t.Fatal(err)
		}
		state, _ := e.CurrentState(ctx, roomID)
		createKey, plKey, jrKey := roommodel.StateKey{Type: spec.MRoomCreate}, roommodel.StateKey{Type: spec.MRoomPowerLevels}, roommodel.StateKey{Type: spec.MRoomJoinRules}
		base := e.stateIDs(t, state, createKey, plKey, jrKey)

		// bob@b.test joins over "federation".
		join := b.build(t, v, roomID, "@bob:b.test", spec.MRoomMember, strp("@bob:b.test"), map[string]string{"membership": "join"},
			[]string{topic0.EventID()}, base, topic0.Depth()+1, time.Now())
		if ev, err := e.Receive(ctx, join); err != nil || ev.Status != roommodel.Accepted {
			t.Fatalf("bob's join: %+v %v", ev, err)
		}
		// alice gives bob power 50: the fork point X.
		x, err := e.Send(ctx, SendRequest{RoomID: roomID, Sender: "@alice:a.test", Type: spec.MRoomPowerLevels, StateKey: strp(""),
			Content: map[string]any{"users": map[string]int{"@alice:a.test": 100, "@bob:b.test": 50}, "state_default": 50}})
		if err != nil {
			t.Fatal(err)
		}
		bobMember := roommodel.StateKey{Type: spec.MRoomMember, StateKey: "@bob:b.test"}
		state, _ = e.CurrentState(ctx, roomID)
		bobAuth := e.stateIDs(t, state, createKey, plKey, bobMember)

		// Branch 1: bob changes the topic, building on X.
		bobTopic := b.build(t, v, roomID, "@bob:b.test", "m.room.topic", strp(""), map[string]string{"topic": "bob's"},
			[]string{x.EventID()}, bobAuth, x.Depth()+1, time.Now().Add(time.Second))
		if ev, err := e.Receive(ctx, bobTopic); err != nil || ev.Status != roommodel.Accepted {
			t.Fatalf("bob's topic: %+v %v", ev, err)
		}
		// Branch 2: alice demotes bob, also building on X (as if sent from
		// another of her devices before she saw bob's topic).
		a := remote{server: "a.test", key: e.opts.PrivateKey}
		aliceAuth := e.stateIDs(t, state, createKey, plKey, roommodel.StateKey{Type: spec.MRoomMember, StateKey: "@alice:a.test"})
		demote := a.build(t, v, roomID, "@alice:a.test", spec.MRoomPowerLevels, strp(""),
			map[string]any{"users": map[string]int{"@alice:a.test": 100}, "state_default": 50},
			[]string{x.EventID()}, aliceAuth, x.Depth()+1, time.Now())
		if ev, err := e.Receive(ctx, demote); err != nil || ev.Status != roommodel.Accepted {
			t.Fatalf("demotion: %+v %v", ev, err)
		}

		h, _ := e.lockRoom(ctx, roomID)
		extremities := append([]string{}, h.extremities...)
		e.unlockRoom(h)
		if len(extremities) != 2 {
			t.Fatalf("extremities after the fork: %v, want two", extremities)
		}
		state, _ = e.CurrentState(ctx, roomID)
		got := e.stateIDs(t, state, roommodel.StateKey{Type: "m.room.topic"}, plKey)
		if len(got) != 2 || got[0] != topic0.EventID() || got[1] != demote.EventID() {
			t.Fatalf("resolved topic, power levels = %v, want %s (bob's topic loses to his demotion), %s", got, topic0.EventID(), demote.EventID())
		}

		// The next local event merges the branches.
		merge, err := e.Send(ctx, SendRequest{RoomID: roomID, Sender: "@alice:a.test", Type: "m.room.message", Content: map[string]string{"body": "merged"}})
		if err != nil {
			t.Fatal(err)
		}
		if len(merge.PrevEventIDs()) != 2 {
			t.Fatalf("merge prev_events %v, want both extremities", merge.PrevEventIDs())
		}

		// bob, now powerless, is soft-failed when he tries again on the old branch.
		again := b.build(t, v, roomID, "@bob:b.test", "m.room.topic", strp(""), map[string]string{"topic": "bob again"},
			[]string{bobTopic.EventID()}, bobAuth, bobTopic.Depth()+1, time.Now().Add(2*time.Second))
		ev, err := e.Receive(ctx, again)
		if err != nil || ev.Status != roommodel.SoftFailed {
			t.Fatalf("bob's late topic: status %v err %v, want soft-failed", ev, err)
		}
		// Missing prev_events are reported, not guessed at.
		orphan := b.build(t, v, roomID, "@bob:b.test", "m.room.message", nil, map[string]string{"body": "?"},
			[]string{"$unknown"}, bobAuth, 99, time.Now())
		if _, err := e.Receive(ctx, orphan); err == nil {
			t.Fatal("an event with unknown prev_events was accepted")
		} else if m, ok := err.(*ErrMissingEvents); !ok || len(m.Prev) != 1 {
			t.Fatalf("missing prev: %v", err)
		}
	})
}

func TestStreamGenNeverPassesStoredPositions(t *testing.T) {
	g := NewStreamGen(10, nil)
	a, b := g.Next(), g.Next() // 11, 12
	g.Done(b)
	if g.Current() != 10 {
		t.Fatalf("current %d before 11 finished, want 10", g.Current())
	}
	g.Done(a)
	if g.Current() != 12 {
		t.Fatalf("current %d, want 12", g.Current())
	}
	// An abandoned highest position is never handed out as a token: after
	// a restart the stream would resume there.
	c := g.Next() // 13
	g.Abandon(c)
	if g.Current() != 12 {
		t.Fatalf("current %d after abandoning 13, want 12", g.Current())
	}
	d := g.Next() // 14
	g.Done(d)
	if g.Current() != 14 {
		t.Fatalf("current %d, want 14", g.Current())
	}
}

// TestCreateRoomPresets checks the preset-dependent state of new rooms
// against Synapse's presets.
func TestCreateRoomPresets(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		e, _, _ := newTestEngine(t, dbURL)
		for _, c := range []struct {
			preset, joinRule, guest string
			invite                  int64
		}{
			{PresetPrivateChat, "invite", "can_join", 0},
			{PresetTrustedPrivateChat, "invite", "can_join", 0},
			{PresetPublicChat, "public", "", 50},
		} {
			roomID, err := e.CreateRoom(ctx, CreateRequest{Creator: "@alice:a.test", Preset: c.preset, Version: "12"})
			if err != nil {
				t.Fatal(err)
			}
			state, _ := e.CurrentState(ctx, roomID)
			pl, _ := e.PowerLevels(ctx, state)
			jr, _ := e.StateEvent(ctx, state, spec.MRoomJoinRules, "")
			ga, _ := e.StateEvent(ctx, state, "m.room.guest_access", "")
			guest := ""
			if ga != nil {
				guest = ContentString(ga.Content(), "guest_access")
			}
			if pl.Invite != c.invite || ContentString(jr.Content(), "join_rule") != c.joinRule || guest != c.guest {
				t.Errorf("%s: invite %d, join_rule %s, guest_access %q", c.preset, pl.Invite, ContentString(jr.Content(), "join_rule"), guest)
			}
			if _, inUsers := pl.Users["@alice:a.test"]; !inUsers || pl.Users["@alice:a.test"] != creatorLevel {
				t.Errorf("%s: v12 creator power %v", c.preset, pl.Users)
			}
		}
	})
}

// TestCreateRoomSameMillisecond creates the same v12 room twice at the
// same instant: the create events (and so the room IDs) would be
// identical, so the second is retried a millisecond later.
func TestCreateRoomSameMillisecond(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		e, _, _ := newTestEngine(t, dbURL)
		frozen := time.Now()
		e.now = func() time.Time { return frozen }
		a, err := e.CreateRoom(ctx, CreateRequest{Creator: "@alice:a.test", Version: "12"})
		if err != nil {
			t.Fatal(err)
		}
		b, err := e.CreateRoom(ctx, CreateRequest{Creator: "@alice:a.test", Version: "12"})
		if err != nil || a == b {
			t.Fatalf("second room: %s %v (first %s)", b, err, a)
		}
	})
}

// TestSendIdempotentPerTransaction sends with the same transaction ID
// twice, and from another device.
func TestSendIdempotentPerTransaction(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		e, _, _ := newTestEngine(t, dbURL)
		roomID, err := e.CreateRoom(ctx, CreateRequest{Creator: "@alice:a.test"})
		if err != nil {
			t.Fatal(err)
		}
		send := func(device string) *Event {
			ev, err := e.Send(ctx, SendRequest{RoomID: roomID, Sender: "@alice:a.test", Type: "m.room.message",
				Content: map[string]string{"body": "hi"}, Txn: &Txn{Localpart: "alice", Device: device, ID: "t1"}})
			if err != nil {
				t.Fatal(err)
			}
			return ev
		}
		first, again, other := send("D1"), send("D1"), send("D2")
		if first.EventID() != again.EventID() || first.EventID() == other.EventID() {
			t.Fatalf("txn reuse: %s %s %s", first.EventID(), again.EventID(), other.EventID())
		}
	})
}

// TestRoomHeadsAreBounded checks that looking up unknown rooms leaves no
// head behind, and that idle rooms' heads are evicted and reloaded.
func TestRoomHeadsAreBounded(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		e, _, _ := newTestEngine(t, dbURL)
		for i := 0; i < 100; i++ {
			if _, err := e.CurrentState(ctx, "!nowhere"+strconv.Itoa(i)+":a.test"); err == nil {
				t.Fatal("state of an unknown room")
			}
		}
		roomID, err := e.CreateRoom(ctx, CreateRequest{Creator: "@alice:a.test"})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(e.heads); n != 1 {
			t.Fatalf("%d heads after 100 unknown lookups and one room, want 1", n)
		}
		if n := e.evictIdle(-time.Hour); n != 1 || len(e.heads) != 0 {
			t.Fatalf("evicted %d, %d left", n, len(e.heads))
		}
		// The room works as before: its head is reloaded from the store.
		if _, err := e.Send(ctx, SendRequest{RoomID: roomID, Sender: "@alice:a.test", Type: "m.room.message", Content: map[string]string{"body": "back"}}); err != nil {
			t.Fatalf("send after eviction: %v", err)
		}
	})
}

func TestMembershipUnchanged(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		e, _, _ := newTestEngine(t, dbURL)
		start := e.Stream().Current()
		if _, err := e.CreateRoom(ctx, CreateRequest{Creator: "@alice:a.test"}); err != nil {
			t.Fatal(err)
		}
		now := e.Stream().Current()
		switch {
		case e.MembershipUnchanged("@alice:a.test", start):
			t.Fatal("alice's join since start-up was missed")
		case !e.MembershipUnchanged("@bob:a.test", start):
			t.Fatal("bob has no membership event, yet a change is reported")
		case !e.MembershipUnchanged("@alice:a.test", now):
			t.Fatal("nothing happened to alice after her join")
		case e.MembershipUnchanged("@bob:a.test", start-1):
			t.Fatal("a range reaching before start-up cannot be answered from memory")
		}
	})
}

// TestNotificationPrevMembership: member events tell the bus the
// target's membership before them, so that listeners can tell a join
// from a profile change.
func TestNotificationPrevMembership(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		e, _, bus := newTestEngine(t, dbURL)
		roomID, err := e.CreateRoom(ctx, CreateRequest{Creator: "@alice:a.test", Preset: PresetPublicChat})
		if err != nil {
			t.Fatal(err)
		}
		join := func(name string) {
			t.Helper()
			if _, err := e.Send(ctx, SendRequest{RoomID: roomID, Sender: "@bob:a.test", Type: spec.MRoomMember, StateKey: strp("@bob:a.test"),
				Content: map[string]string{"membership": "join", "displayname": name}}); err != nil {
				t.Fatal(err)
			}
		}
		join("Bob")
		join("Bobby")
		bus.mu.Lock()
		defer bus.mu.Unlock()
		var got [][2]string
		for _, n := range bus.got {
			if n.Event.RoomID().String() == roomID && n.Event.StateKey() != nil && *n.Event.StateKey() == "@bob:a.test" {
				got = append(got, [2]string{n.PrevMembership, n.Membership})
			}
		}
		if len(got) != 2 || got[0] != [2]string{"", "join"} || got[1] != [2]string{"join", "join"} {
			t.Fatalf("bob's notifications (prev, new): %v", got)
		}
	})
}

// TestRoomHeadsTrimIdle: the quiet checks drop the heads of rooms unused
// for headIdleTrims of them, keep those in use, and a dropped room
// works as before.
func TestRoomHeadsTrimIdle(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		e, _, _ := newTestEngine(t, dbURL)
		busy, err := e.CreateRoom(ctx, CreateRequest{Creator: "@alice:a.test"})
		if err != nil {
			t.Fatal(err)
		}
		idle, err := e.CreateRoom(ctx, CreateRequest{Creator: "@alice:a.test"})
		if err != nil {
			t.Fatal(err)
		}
		send := func(roomID string) {
			t.Helper()
			if _, err := e.Send(ctx, SendRequest{RoomID: roomID, Sender: "@alice:a.test", Type: "m.room.message", Content: map[string]string{"body": "hi"}}); err != nil {
				t.Fatalf("send: %v", err)
			}
		}
		has := func(roomID string) bool {
			e.headsMu.Lock()
			defer e.headsMu.Unlock()
			_, ok := e.heads[roomID]
			return ok
		}
		for range headIdleTrims {
			send(busy)
			cache.TrimIdleCaches()
		}
		if has(idle) || !has(busy) {
			t.Fatalf("after %d quiet checks: idle room's head kept %v, busy room's %v; want dropped, kept", headIdleTrims, has(idle), has(busy))
		}
		for range headIdleTrims {
			cache.TrimIdleCaches()
		}
		if has(busy) {
			t.Fatal("a head unused through the quiet checks was kept")
		}
		send(busy)
		send(idle)
		if st, err := e.CurrentState(ctx, idle); err != nil || len(st) == 0 {
			t.Fatalf("state of a room whose head was dropped: %d keys, %v", len(st), err)
		}
	})
}
