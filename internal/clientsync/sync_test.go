package clientsync

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/cache"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

func TestTokenRoundTrip(t *testing.T) {
	for _, pos := range []int64{0, 1, 42, 1 << 40} {
		tok := Token{Events: pos}
		got, err := ParseToken(tok.String())
		if err != nil || got != tok {
			t.Fatalf("ParseToken(%q) = %+v, %v", tok.String(), got, err)
		}
	}
	// Streams a newer server adds after "_" are ignored.
	if got, err := ParseToken("s17_4_9"); err != nil || got.Events != 17 {
		t.Fatalf("ParseToken with extra streams = %+v, %v", got, err)
	}
	for _, bad := range []string{"", "s", "17", "t17", "s-1", "sabc", "s1.5", "s 1", "s99999999999999999999"} {
		if _, err := ParseToken(bad); err == nil {
			t.Fatalf("ParseToken(%q) accepted a bad token", bad)
		}
	}
}

// testEvent builds an event of a room at a stream position.
func testEvent(t *testing.T, roomID, typ string, stateKey *string, pos int64) *rooms.Event {
	t.Helper()
	ev := map[string]any{
		"room_id": roomID, "type": typ, "sender": "@alice:hs1.test", "content": map[string]any{"membership": "invite"},
		"origin_server_ts": 1, "depth": 1, "prev_events": []string{}, "auth_events": []string{},
		"hashes": map[string]string{"sha256": "AAAA"}, "signatures": map[string]any{},
	}
	if stateKey != nil {
		ev["state_key"] = *stateKey
	}
	raw, _ := json.Marshal(ev)
	pdu, err := gomatrixserverlib.MustGetRoomVersion(gomatrixserverlib.RoomVersionV10).NewEventFromTrustedJSON(raw, false)
	if err != nil {
		t.Fatalf("event: %v", err)
	}
	return &rooms.Event{PDU: pdu, StreamPos: pos}
}

// members is a fixed member list for notifier tests.
type members map[string][]string

func (m members) JoinedMembers(_ context.Context, roomID string) ([]string, error) {
	return m[roomID], nil
}

func (m members) MembershipsOf(_ context.Context, userID string, _ ...string) ([]store.RoomMembership, error) {
	var out []store.RoomMembership
	for roomID, users := range m {
		if slices.Contains(users, userID) {
			out = append(out, store.RoomMembership{RoomID: roomID, Membership: "join"})
		}
	}
	return out, nil
}

var testMembers = members{
	"!a:hs1.test": {"@bob:hs1.test", "@remote:elsewhere.test"},
	"!b:hs1.test": {"@bob:hs1.test"},
	"!c:hs1.test": {"@carol:hs1.test"},
}

func fired(w *Waiter) bool {
	select {
	case <-w.C:
		return true
	default:
		return false
	}
}

// TestNotifierWakesRoomWaiters checks that an event wakes the waiters of
// its room, not others.
func TestNotifierWakesRoomWaiters(t *testing.T) {
	stream := rooms.NewStreamGen(0, nil)
	n := NewNotifier(stream, testMembers, "hs1.test", nil)
	inRoom := n.Register("@bob:hs1.test")
	elsewhere := n.Register("@carol:hs1.test")
	defer n.Unregister(inRoom)
	defer n.Unregister(elsewhere)

	pos := stream.Next()
	stream.Done(pos)
	n.Publish(rooms.Notification{Event: testEvent(t, "!b:hs1.test", "m.room.message", nil, pos)})
	if !fired(inRoom) {
		t.Fatal("waiter of the room not woken")
	}
	if fired(elsewhere) {
		t.Fatal("waiter of another room woken")
	}
	// A fired waiter is dropped by the wake-up itself.
	if _, ok := n.byUser["@bob:hs1.test"]; ok {
		t.Fatal("fired waiter still registered")
	}
	// A second event does not close the channel twice.
	pos = stream.Next()
	stream.Done(pos)
	n.Publish(rooms.Notification{Event: testEvent(t, "!a:hs1.test", "m.room.message", nil, pos)})
}

// TestNotifierWakesMembershipTarget checks that a membership event wakes
// the user it is about, even for a room they are not in (an invite).
func TestNotifierWakesMembershipTarget(t *testing.T) {
	stream := rooms.NewStreamGen(0, nil)
	n := NewNotifier(stream, testMembers, "hs1.test", nil)
	bob := n.Register("@bob:hs1.test")
	carol := n.Register("@carol:hs1.test")
	defer n.Unregister(bob)
	defer n.Unregister(carol)
	pos := stream.Next()
	stream.Done(pos)
	target := "@bob:hs1.test"
	n.Publish(rooms.Notification{Event: testEvent(t, "!x:hs1.test", "m.room.member", &target, pos), Membership: "invite"})
	if !fired(bob) || fired(carol) {
		t.Fatalf("invite woke bob=%v carol=%v, want only bob", fired(bob), fired(carol))
	}
	// Wake covers changes outside the event stream.
	n.Wake("@carol:hs1.test")
	if !fired(carol) {
		t.Fatal("Wake did not wake carol")
	}
}

// TestNotifierHoldsBackUnreadableEvents checks that an event is announced
// only once every position before it is readable, so that a woken sync
// finds it.
func TestNotifierHoldsBackUnreadableEvents(t *testing.T) {
	// Run hears of the stream's moves on the bus.
	b := bus.New()
	stream := rooms.NewStreamGen(0, b)
	n := NewNotifier(stream, testMembers, "hs1.test", b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go n.Run(ctx)
	w := n.Register("@bob:hs1.test")
	defer n.Unregister(w)

	slow := stream.Next() // another room's event, still being persisted
	fast := stream.Next()
	stream.Done(fast)
	n.Publish(rooms.Notification{Event: testEvent(t, "!a:hs1.test", "m.room.message", nil, fast)})
	if fired(w) {
		t.Fatal("woken while an earlier position is still in flight")
	}
	if cur := stream.Current(); cur >= fast {
		t.Fatalf("stream current %d already covers %d", cur, fast)
	}
	stream.Done(slow)
	select {
	case <-w.C:
	case <-time.After(5 * time.Second):
		t.Fatal("not woken once the earlier position was done")
	}
}

// TestNotifierUnregister checks that an unregistered waiter is forgotten.
func TestNotifierUnregister(t *testing.T) {
	stream := rooms.NewStreamGen(0, nil)
	n := NewNotifier(stream, testMembers, "hs1.test", nil)
	w := n.Register("@bob:hs1.test")
	n.Unregister(w)
	if len(n.byUser) != 0 {
		t.Fatalf("waiter still registered: %v", n.byUser)
	}
	pos := stream.Next()
	stream.Done(pos)
	n.Publish(rooms.Notification{Event: testEvent(t, "!a:hs1.test", "m.room.message", nil, pos)})
	if fired(w) {
		t.Fatal("unregistered waiter woken")
	}
}

// TestNotifierFollowsMembership checks that the notifier's member lists
// follow membership events: a user who joins is woken by the room's next
// events, one who leaves is not.
func TestNotifierFollowsMembership(t *testing.T) {
	stream := rooms.NewStreamGen(0, nil)
	n := NewNotifier(stream, testMembers, "hs1.test", nil)
	publish := func(typ string, stateKey *string, membership string) {
		pos := stream.Next()
		stream.Done(pos)
		n.Publish(rooms.Notification{Event: testEvent(t, "!c:hs1.test", typ, stateKey, pos), Membership: membership})
	}
	dave := "@dave:hs1.test"
	w := n.Register(dave)
	publish("m.room.message", nil, "")
	if fired(w) {
		t.Fatal("dave woken by a room he is not in")
	}
	publish("m.room.member", &dave, "join")
	if !fired(w) {
		t.Fatal("dave not woken by his own join")
	}
	n.Unregister(w)
	w = n.Register(dave)
	publish("m.room.message", nil, "")
	if !fired(w) {
		t.Fatal("dave not woken by a message in a room he joined")
	}
	n.Unregister(w)
	publish("m.room.member", &dave, "leave")
	w = n.Register(dave)
	defer n.Unregister(w)
	publish("m.room.message", nil, "")
	if fired(w) {
		t.Fatal("dave woken by a room he left")
	}
}

// testGate is a Gate moved by hand.
type testGate struct{ *cache.Watermark }

func newTestGate() *testGate { return &testGate{cache.NewWatermark(0)} }

func (g *testGate) Through() int64             { return g.Get() }
func (g *testGate) Processed() <-chan struct{} { return g.Moved() }
func (g *testGate) advance(pos int64)          { g.Raise(pos) }

// TestNotifierHoldsForGate checks that a readable event wakes its room's
// waiters only once the gate has processed it, or once the longest hold
// has passed when the gate never gets to it.
func TestNotifierHoldsForGate(t *testing.T) {
	b := bus.New()
	stream := rooms.NewStreamGen(0, b)
	gate := newTestGate()
	n := NewNotifier(stream, testMembers, "hs1.test", b, WithGate(gate, 300*time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go n.Run(ctx)

	w := n.Register("@bob:hs1.test")
	pos := stream.Next()
	stream.Done(pos)
	n.Publish(rooms.Notification{Event: testEvent(t, "!b:hs1.test", "m.room.message", nil, pos)})
	time.Sleep(50 * time.Millisecond)
	if fired(w) {
		t.Fatal("woken before the gate processed the event")
	}
	gate.advance(pos)
	select {
	case <-w.C:
	case <-time.After(5 * time.Second):
		t.Fatal("not woken once the gate processed the event")
	}
	n.Unregister(w)

	// The gate never gets to this one: the hold ends it.
	w = n.Register("@bob:hs1.test")
	defer n.Unregister(w)
	pos = stream.Next()
	stream.Done(pos)
	published := time.Now()
	n.Publish(rooms.Notification{Event: testEvent(t, "!b:hs1.test", "m.room.message", nil, pos)})
	select {
	case <-w.C:
		if waited := time.Since(published); waited < 250*time.Millisecond {
			t.Fatalf("woken after %v, before the hold ended", waited)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("not woken when the hold ended")
	}
}

// lockCheckingMembers fails the test when the notifier queries it while
// holding its lock: every request's Register and wake-up queues on it.
type lockCheckingMembers struct {
	members
	t       *testing.T
	n       *Notifier
	queries int
}

func (m *lockCheckingMembers) check() {
	m.queries++
	if !m.n.mu.TryLock() {
		m.t.Error("the notifier queried the database holding its lock")
		return
	}
	m.n.mu.Unlock()
}

func (m *lockCheckingMembers) JoinedMembers(ctx context.Context, roomID string) ([]string, error) {
	m.check()
	return m.members.JoinedMembers(ctx, roomID)
}

func (m *lockCheckingMembers) MembershipsOf(ctx context.Context, userID string, ms ...string) ([]store.RoomMembership, error) {
	m.check()
	return m.members.MembershipsOf(ctx, userID, ms...)
}

// TestNotifierQueriesWithoutLock runs every path that loads member lists
// (an event, a room wake-up, a roommates wake-up) and checks that each
// still wakes the right waiters.
func TestNotifierQueriesWithoutLock(t *testing.T) {
	stream := rooms.NewStreamGen(0, nil)
	m := &lockCheckingMembers{members: testMembers, t: t}
	n := NewNotifier(stream, m, "hs1.test", nil)
	m.n = n

	bob := n.Register("@bob:hs1.test")
	pos := stream.Next()
	stream.Done(pos)
	n.Publish(rooms.Notification{Event: testEvent(t, "!b:hs1.test", "m.room.message", nil, pos)})
	if !fired(bob) {
		t.Fatal("event: waiter not woken")
	}
	carol := n.Register("@carol:hs1.test")
	n.WakeRoom("!c:hs1.test")
	if !fired(carol) {
		t.Fatal("WakeRoom: waiter not woken")
	}
	bob = n.RegisterWithPresence("@bob:hs1.test")
	defer n.Unregister(bob)
	n.WakeRoommates("@remote:elsewhere.test")
	if !fired(bob) {
		t.Fatal("WakeRoommates: roommate not woken")
	}
	if m.queries < 3 {
		t.Fatalf("%d queries; the test does not cover the loading paths", m.queries)
	}
}
