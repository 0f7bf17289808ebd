package clientsync

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/rooms"
)

// TestPresenceWakesOnlyPresenceWaiters checks that a presence change
// wakes the requests that report presence (a /sync), of roommates and of
// the user, and no other (sliding sync, /events, a /sync filtering
// presence out), which other changes still wake.
func TestPresenceWakesOnlyPresenceWaiters(t *testing.T) {
	n := NewNotifier(rooms.NewStreamGen(0, nil), testMembers, "hs1.test", nil, WithPresenceWakeInterval(0))
	syncing := n.RegisterWithPresence("@bob:hs1.test")
	sliding := n.Register("@bob:hs1.test")
	defer n.Unregister(syncing)
	defer n.Unregister(sliding)
	n.WakeRoommates("@remote:elsewhere.test") // shares !a with bob
	if !fired(syncing) {
		t.Fatal("a roommate's presence did not wake a /sync")
	}
	if fired(sliding) {
		t.Fatal("a roommate's presence woke a request that reports no presence")
	}
	own := n.RegisterWithPresence("@bob:hs1.test")
	defer n.Unregister(own)
	n.WakeRoommates("@bob:hs1.test")
	if !fired(own) {
		t.Fatal("the user's own presence did not wake their /sync")
	}
	if fired(sliding) {
		t.Fatal("the user's own presence woke a request that reports no presence")
	}
	n.Wake("@bob:hs1.test")
	if !fired(sliding) {
		t.Fatal("Wake did not wake a request that reports no presence")
	}
}

// TestPresenceWakesCoalesced checks the batching of roommates' presence
// wake-ups: the first change of a quiet server wakes at once, one within
// the interval waits for the batch, which wakes the waiters registered
// before it and not those registered after (their requests read the
// change); an event meanwhile wakes at once.
func TestPresenceWakesCoalesced(t *testing.T) {
	stream := rooms.NewStreamGen(0, nil)
	n := NewNotifier(stream, testMembers, "hs1.test", nil, WithPresenceWakeInterval(time.Hour))
	w := n.RegisterWithPresence("@bob:hs1.test")
	n.WakeRoommates("@remote:elsewhere.test")
	if !fired(w) {
		t.Fatal("the first change did not wake at once")
	}

	w = n.RegisterWithPresence("@bob:hs1.test")
	n.WakeRoommates("@remote:elsewhere.test")
	if fired(w) {
		t.Fatal("a change within the interval woke at once")
	}
	if due, pending := n.flushPresence(time.Now()); !pending || time.Until(due) <= 0 {
		t.Fatalf("flushPresence before the batch is due = %v, %v; want a deadline ahead", due, pending)
	}
	// A message in the meantime wakes at once; its answer carries the
	// presence changed so far.
	pos := stream.Next()
	stream.Done(pos)
	n.Publish(rooms.Notification{Event: testEvent(t, "!b:hs1.test", "m.room.message", nil, pos)})
	if !fired(w) {
		t.Fatal("an event did not wake a waiter with presence pending")
	}
	after := n.RegisterWithPresence("@bob:hs1.test")
	defer n.Unregister(after)
	if _, pending := n.flushPresence(time.Now().Add(2 * time.Hour)); pending {
		t.Fatal("the batch is still pending after it was due")
	}
	if fired(after) {
		t.Fatal("the batch woke a waiter registered after the change")
	}

	// A change pending for a waiter that nothing else woke: the batch wakes it.
	n.WakeRoommates("@remote:elsewhere.test")
	if fired(after) {
		t.Fatal("a change within the interval woke at once")
	}
	n.flushPresence(time.Now().Add(4 * time.Hour))
	if !fired(after) {
		t.Fatal("the batch did not wake a waiter registered before the change")
	}
}

// TestPresenceWakeArrives checks that Run delivers a deferred presence
// wake-up when its batch is due, with nothing else happening.
func TestPresenceWakeArrives(t *testing.T) {
	n := NewNotifier(rooms.NewStreamGen(0, nil), testMembers, "hs1.test", nil, WithPresenceWakeInterval(50*time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go n.Run(ctx)
	for i := range 3 {
		w := n.RegisterWithPresence("@bob:hs1.test")
		n.WakeRoommates("@remote:elsewhere.test")
		select {
		case <-w.C:
		case <-time.After(10 * time.Second):
			t.Fatalf("change %d: the roommate's /sync was never woken", i)
		}
	}
}

// TestPresenceWakesEitherSide checks that roommates are found whether
// the notifier looks from the waiting users (fewer than the rooms'
// members) or from the rooms' members (fewer than the waiting users),
// and that the count of presence waiters follows registrations.
func TestPresenceWakesEitherSide(t *testing.T) {
	big := []string{"@changer:hs1.test"}
	for i := range 50 {
		big = append(big, fmt.Sprintf("@m%d:hs1.test", i))
	}
	m := members{"!big:hs1.test": big, "!small:hs1.test": {"@changer:hs1.test", "@m0:hs1.test"}}
	// Fewer waiting than members: one waiter in the big room, one outside.
	n := NewNotifier(rooms.NewStreamGen(0, nil), m, "hs1.test", nil, WithPresenceWakeInterval(0))
	in, out := n.RegisterWithPresence("@m7:hs1.test"), n.RegisterWithPresence("@stranger:hs1.test")
	n.WakeRoommates("@changer:hs1.test")
	if !fired(in) || fired(out) {
		t.Fatalf("looking from the waiting: roommate woken %v, stranger woken %v", fired(in), fired(out))
	}
	n.Unregister(out)
	if len(n.presence.waiting) != 0 {
		t.Fatalf("presence waiters after firing and unregistering: %v", n.presence.waiting)
	}

	// More waiting than members: the changer is only in the small room.
	m2 := members{"!small:hs1.test": {"@changer:hs1.test", "@m0:hs1.test"}}
	n = NewNotifier(rooms.NewStreamGen(0, nil), m2, "hs1.test", nil, WithPresenceWakeInterval(0))
	var others []*Waiter
	for i := 1; i < 10; i++ {
		others = append(others, n.RegisterWithPresence(fmt.Sprintf("@m%d:hs1.test", i)))
	}
	mate := n.RegisterWithPresence("@m0:hs1.test")
	n.WakeRoommates("@changer:hs1.test")
	if !fired(mate) {
		t.Fatal("looking from the rooms: roommate not woken")
	}
	for _, w := range others {
		if fired(w) {
			t.Fatalf("looking from the rooms: %s woken", w.user)
		}
		n.Unregister(w)
	}
	if len(n.presence.waiting) != 0 {
		t.Fatalf("presence waiters after firing and unregistering: %v", n.presence.waiting)
	}
}

// countingMembers counts the member lists a notifier loads.
type countingMembers struct {
	members
	loads int
}

func (m *countingMembers) JoinedMembers(ctx context.Context, roomID string) ([]string, error) {
	m.loads++
	return m.members.JoinedMembers(ctx, roomID)
}

// roomLists are users' rooms from members; those in uncached are not
// held, and looking them up fails the test.
type roomLists struct {
	t        *testing.T
	m        members
	uncached map[string]bool
}

func (l roomLists) JoinedRooms(ctx context.Context, user string) ([]string, error) {
	if l.uncached[user] {
		l.t.Errorf("the rooms of %s, not held, were looked up", user)
	}
	ms, err := l.m.MembershipsOf(ctx, user)
	var ids []string
	for _, r := range ms {
		ids = append(ids, r.RoomID)
	}
	return ids, err
}

func (l roomLists) CachedJoinedRooms(user string) ([]string, bool) {
	if l.uncached[user] {
		return nil, false
	}
	ids, _ := l.JoinedRooms(context.Background(), user)
	return ids, true
}

// TestPresenceWakesFromRoomLists: with users' room lists (WithRoomLists),
// a presence change wakes the waiting roommates, the changed user and a
// waiter whose rooms are not held (rather than ask the database in the
// request that changed presence), not a stranger, and loads no room's
// member list: at 10,000 users the lists of rooms of 5,000 members,
// reloaded on presence changes, were 12 % of the server's CPU.
func TestPresenceWakesFromRoomLists(t *testing.T) {
	big := []string{"@changer:hs1.test"}
	for i := range 50 {
		big = append(big, fmt.Sprintf("@m%d:hs1.test", i))
	}
	m := &countingMembers{members: members{"!big:hs1.test": big, "!other:hs1.test": {"@stranger:hs1.test", "@m3:hs1.test", "@unheld:hs1.test"}}}
	lists := roomLists{t: t, m: m.members, uncached: map[string]bool{"@unheld:hs1.test": true}}
	n := NewNotifier(rooms.NewStreamGen(0, nil), m, "hs1.test", nil, WithPresenceWakeInterval(0), WithRoomLists(lists))
	self, mate, unheld := n.RegisterWithPresence("@changer:hs1.test"), n.RegisterWithPresence("@m7:hs1.test"), n.RegisterWithPresence("@unheld:hs1.test")
	stranger := n.RegisterWithPresence("@stranger:hs1.test")
	n.WakeRoommates("@changer:hs1.test")
	if !fired(self) || !fired(mate) || !fired(unheld) || fired(stranger) {
		t.Fatalf("woken: changer %v, roommate %v, one whose rooms are not held %v, stranger %v", fired(self), fired(mate), fired(unheld), fired(stranger))
	}
	if m.loads != 0 {
		t.Fatalf("%d member lists loaded", m.loads)
	}
	n.Unregister(stranger)
	if len(n.presence.waiting) != 0 {
		t.Fatalf("presence waiters after firing and unregistering: %v", n.presence.waiting)
	}
}

// TestEventWakesFromRoomLists: with users' room lists (WithRoomLists),
// an event of a room whose member list is not cached wakes the room's
// waiting members, a waiter whose rooms are not held, the target of a
// membership event and the room's peekers, not a stranger, and loads no
// member list: at 10,000 users the notifier's cache no longer held the
// lists of rooms of 5,000 members, and each message loaded its room's.
func TestEventWakesFromRoomLists(t *testing.T) {
	big := []string{}
	for i := range 50 {
		big = append(big, fmt.Sprintf("@m%d:hs1.test", i))
	}
	m := &countingMembers{members: members{"!big:hs1.test": big, "!other:hs1.test": {"@stranger:hs1.test", "@m3:hs1.test", "@unheld:hs1.test"}}}
	lists := roomLists{t: t, m: m.members, uncached: map[string]bool{"@unheld:hs1.test": true}}
	stream := rooms.NewStreamGen(0, nil)
	n := NewNotifier(stream, m, "hs1.test", nil, WithRoomLists(lists))
	publish := func(typ string, stateKey *string) {
		pos := stream.Next()
		stream.Done(pos)
		n.Publish(rooms.Notification{Event: testEvent(t, "!big:hs1.test", typ, stateKey, pos), Membership: "invite"})
	}
	first, last, syncing := n.Register("@m0:hs1.test"), n.Register("@m49:hs1.test"), n.RegisterWithPresence("@m7:hs1.test")
	unheld, peeker, stranger := n.Register("@unheld:hs1.test"), n.Register("!big:hs1.test"), n.Register("@stranger:hs1.test")
	defer n.Unregister(stranger)
	publish("m.room.message", nil)
	if !fired(first) || !fired(last) || !fired(syncing) || !fired(unheld) || !fired(peeker) || fired(stranger) {
		t.Fatalf("woken: members %v %v %v, one whose rooms are not held %v, peeker %v, stranger %v",
			fired(first), fired(last), fired(syncing), fired(unheld), fired(peeker), fired(stranger))
	}
	invited := "@invited:hs1.test"
	w := n.Register(invited)
	publish("m.room.member", &invited)
	if !fired(w) || fired(stranger) {
		t.Fatalf("an invite woke its target %v, a stranger %v", fired(w), fired(stranger))
	}
	if m.loads != 0 {
		t.Fatalf("%d member lists loaded", m.loads)
	}
	if n.Waiting() != 1 {
		t.Fatalf("%d waiting, want the stranger alone", n.Waiting())
	}
}

// countedLists is roomLists counting the waiters' lists read.
type countedLists struct {
	roomLists
	reads int
}

func (l *countedLists) CachedJoinedRooms(user string) ([]string, bool) {
	l.reads++
	return l.roomLists.CachedJoinedRooms(user)
}

// TestEventWakesFromRoomIndex: a message's wake-up finds its room's
// waiters from an index of the waiters' room lists, kept as they
// register and leave and as state events may change the lists: no
// waiter's list is read per message (the walk over every waiter and its
// rooms, per message, was what a message's wake-up cost at 10,000
// users), and no wake-up is missed (TestEventWakesFromRoomLists' cases,
// a user who joins a room while waiting, and a state event that may
// change anyone's rooms).
func TestEventWakesFromRoomIndex(t *testing.T) {
	big := []string{}
	for i := range 50 {
		big = append(big, fmt.Sprintf("@m%d:hs1.test", i))
	}
	m := &countingMembers{members: members{"!big:hs1.test": big, "!other:hs1.test": {"@stranger:hs1.test", "@m3:hs1.test", "@unheld:hs1.test", "@solo:hs1.test"}}}
	lists := &countedLists{roomLists: roomLists{t: t, m: m.members, uncached: map[string]bool{"@unheld:hs1.test": true}}}
	stream := rooms.NewStreamGen(0, nil)
	n := NewNotifier(stream, m, "hs1.test", nil, WithRoomLists(lists))
	publish := func(room, typ string, stateKey *string) {
		pos := stream.Next()
		stream.Done(pos)
		n.Publish(rooms.Notification{Event: testEvent(t, room, typ, stateKey, pos), Membership: "join"})
	}
	var others []*Waiter // members of !big who wait through it all
	for i := 10; i < 50; i++ {
		others = append(others, n.Register(fmt.Sprintf("@m%d:hs1.test", i)))
	}
	first, syncing := n.Register("@m0:hs1.test"), n.RegisterWithPresence("@m7:hs1.test")
	unheld, peeker, stranger := n.Register("@unheld:hs1.test"), n.Register("!big:hs1.test"), n.Register("@stranger:hs1.test")
	reads := lists.reads
	publish("!other:hs1.test", "m.room.message", nil)
	if !fired(stranger) || !fired(unheld) || fired(first) || fired(syncing) || fired(peeker) || slices.ContainsFunc(others, fired) {
		t.Fatalf("a message of !other woke: stranger %v, unheld %v, members of !big %v %v, its peeker %v", fired(stranger), fired(unheld), fired(first), fired(syncing), fired(peeker))
	}
	if lists.reads != reads {
		t.Fatalf("%d room lists read for a message of a room of 3", lists.reads-reads)
	}
	unheld, stranger = n.Register("@unheld:hs1.test"), n.Register("@stranger:hs1.test")
	reads = lists.reads
	publish("!big:hs1.test", "m.room.message", nil)
	if !fired(first) || !fired(syncing) || !fired(unheld) || !fired(peeker) || fired(stranger) || slices.ContainsFunc(others, func(w *Waiter) bool { return !fired(w) }) {
		t.Fatalf("a message of !big woke: members %v %v, one whose rooms are not held %v, peeker %v, stranger %v", fired(first), fired(syncing), fired(unheld), fired(peeker), fired(stranger))
	}
	if lists.reads != reads || m.loads != 0 {
		t.Fatalf("%d room lists read, %d member lists loaded for a message", lists.reads-reads, m.loads)
	}

	// The stranger joins !big while waiting: the join wakes them, and
	// they wait again with the new list, which !big's messages follow.
	m.members["!big:hs1.test"] = append(slices.Clone(big), "@stranger:hs1.test")
	lists.m = m.members
	joiner := "@stranger:hs1.test"
	publish("!big:hs1.test", "m.room.member", &joiner)
	if !fired(stranger) {
		t.Fatal("a join did not wake its target")
	}
	stranger = n.Register(joiner)
	publish("!big:hs1.test", "m.room.message", nil)
	if !fired(stranger) {
		t.Fatal("a message of a room joined while waiting did not wake the joiner")
	}

	// A state event other than a local membership may change anyone's
	// rooms (state resolution): it wakes every waiter, as when their
	// lists were read per message (the roommate cache drops them all),
	// and those who wait again are filed under their lists as they are.
	inOther, inBig := n.Register("@solo:hs1.test"), n.Register("@m0:hs1.test")
	empty := ""
	publish("!big:hs1.test", "m.room.topic", &empty)
	if !fired(inBig) || !fired(inOther) {
		t.Fatalf("a state event woke its room's member %v, a waiter whose rooms it may have changed %v", fired(inBig), fired(inOther))
	}
	inOther = n.Register("@solo:hs1.test")
	publish("!big:hs1.test", "m.room.message", nil)
	if fired(inOther) {
		t.Fatal("a waiter registered after the state event was woken by another room's message")
	}
	n.Unregister(inOther)
	for _, w := range others {
		n.Unregister(w)
	}
	if n.Waiting() != 0 || len(n.waitingIn) != 0 || len(n.listed) != 0 || len(n.unlisted) != 0 {
		t.Fatalf("%d waiting, index of %d rooms, %d listed, %d unlisted after all were woken", n.Waiting(), len(n.waitingIn), len(n.listed), len(n.unlisted))
	}
}
