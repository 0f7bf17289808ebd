package federation_test

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// sendRoomEvents returns every event of a room a server holds, oldest
// first, found by walking prev_events back from the forward extremities.
func sendRoomEvents(t *testing.T, s *testserver.Server, roomID string) []*rooms.Event {
	t.Helper()
	ctx := context.Background()
	frontier, _, err := s.Engine().Extremities(ctx, roomID)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var all []*rooms.Event
	for len(frontier) > 0 {
		evs, err := s.Engine().EventsByID(ctx, frontier)
		if err != nil {
			t.Fatal(err)
		}
		frontier = nil
		for _, ev := range evs {
			if seen[ev.EventID()] {
				continue
			}
			seen[ev.EventID()] = true
			all = append(all, ev)
			frontier = append(frontier, ev.PrevEventIDs()...)
		}
	}
	slices.SortFunc(all, func(a, b *rooms.Event) int { return int(a.Depth() - b.Depth()) })
	return all
}

// sendBuild builds an event signed by server as, on top of what server at
// holds of the room: its forward extremities as prev_events and auth
// events chosen from its current state by the auth rules.
func sendBuild(t *testing.T, at, as *testserver.Server, roomID, sender, typ string, stateKey *string, content any) gomatrixserverlib.PDU {
	t.Helper()
	prevs, _, err := at.Engine().Extremities(context.Background(), roomID)
	if err != nil {
		t.Fatal(err)
	}
	prevEvs, err := at.Engine().EventsByID(context.Background(), prevs)
	if err != nil {
		t.Fatal(err)
	}
	var prevPDUs []gomatrixserverlib.PDU
	for _, p := range prevEvs {
		prevPDUs = append(prevPDUs, p.PDU)
	}
	return sendBuildAfter(t, at, as, prevPDUs, roomID, sender, typ, stateKey, content)
}

// sendBuildAfter is sendBuild with the prev_events given, which at need
// not hold (to make gaps).
func sendBuildAfter(t *testing.T, at, as *testserver.Server, prevPDUs []gomatrixserverlib.PDU, roomID, sender, typ string, stateKey *string, content any) gomatrixserverlib.PDU {
	t.Helper()
	ctx := context.Background()
	e := at.Engine()
	v, err := e.RoomVersion(ctx, roomID)
	if err != nil {
		t.Fatal(err)
	}
	var depth int64
	prevs := []string{}
	for _, p := range prevPDUs {
		depth = max(depth, p.Depth()+1)
		prevs = append(prevs, p.EventID())
	}
	state, err := e.CurrentState(ctx, roomID)
	if err != nil {
		t.Fatal(err)
	}
	stateEvs, err := e.StateEvents(ctx, state)
	if err != nil {
		t.Fatal(err)
	}
	var pdus []gomatrixserverlib.PDU
	for _, ev := range stateEvs {
		pdus = append(pdus, ev.PDU)
	}
	auth, err := gomatrixserverlib.NewAuthEvents(pdus)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(content)
	if err != nil {
		t.Fatal(err)
	}
	b := v.NewEventBuilderFromProtoEvent(&gomatrixserverlib.ProtoEvent{
		SenderID: sender, RoomID: roomID, Type: typ, StateKey: stateKey, PrevEvents: prevs, Depth: depth, Content: raw,
	})
	if err := b.AddAuthEvents(auth); err != nil {
		t.Fatal(err)
	}
	key := serverKey(t, as)
	pdu, err := b.Build(time.Now(), spec.ServerName(as.Config.ServerName), gomatrixserverlib.KeyID(key.ID), key.Private)
	if err != nil {
		t.Fatal(err)
	}
	return pdu
}

// sendReplicate ends the way a join of userID (a user of dst) to src's
// public room would: dst receives the room's events oldest first, then a
// join built and signed by dst is received by both servers.
func sendReplicate(t *testing.T, src, dst *testserver.Server, roomID, userID string) {
	t.Helper()
	ctx := context.Background()
	for _, ev := range sendRoomEvents(t, src, roomID) {
		if _, err := dst.Engine().Receive(ctx, ev.PDU); err != nil {
			t.Fatalf("replicating %s: %v", ev.EventID(), err)
		}
	}
	join := sendBuild(t, src, dst, roomID, userID, spec.MRoomMember, &userID, map[string]string{"membership": spec.Join})
	for _, s := range []*testserver.Server{dst, src} {
		ev, err := s.Engine().Receive(ctx, join)
		if err != nil {
			t.Fatalf("join on %s: %v", s.Config.ServerName, err)
		}
		if m, _ := s.Engine().MembershipOf(ctx, roomID, userID); m != spec.Join {
			t.Fatalf("join on %s: status %d, membership %q", s.Config.ServerName, ev.Status, m)
		}
	}
}

// sendRoom starts a network of two servers with alice on hs1 in a public
// room that bob of hs2 has joined.
func sendRoom(t *testing.T, net *testserver.Network) (alice, bob *mautrix.Client, roomID id.RoomID) {
	t.Helper()
	hs1, hs2 := net.Servers[0], net.Servers[1]
	alice = hs1.Register("alice", "password")
	// bob must exist on hs2 before his join arrives, for his /sync.
	bob = hs2.Register("bob", "password")
	resp, err := alice.CreateRoom(context.Background(), &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "federated"})
	if err != nil {
		t.Fatal(err)
	}
	sendReplicate(t, hs1, hs2, resp.RoomID.String(), bob.UserID.String())
	return alice, bob, resp.RoomID
}

// sendSyncer follows a client's /sync.
type sendSyncer struct {
	c     *mautrix.Client
	since string
}

// waitMessages syncs until the room's timeline has shown every body in
// want, and returns the bodies seen, in timeline order.
func (s *sendSyncer) waitMessages(t *testing.T, roomID id.RoomID, want ...string) []string {
	t.Helper()
	var seen []string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := s.c.SyncRequest(context.Background(), 1000, s.since, "", false, event.PresenceOnline)
		if err != nil {
			t.Fatalf("sync: %v", err)
		}
		s.since = resp.NextBatch
		if room, ok := resp.Rooms.Join[roomID]; ok {
			for _, ev := range room.Timeline.Events {
				if ev.Type == event.EventMessage {
					body, _ := ev.Content.Raw["body"].(string)
					seen = append(seen, body)
				}
			}
		}
		if containsAll(seen, want) {
			return seen
		}
	}
	t.Fatalf("%s: timeline of %s shows %q, want %q", s.c.UserID, roomID, seen, want)
	return nil
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// sendMessages lists the message bodies of a room as a client sees them
// through /messages, oldest first.
func sendMessages(t *testing.T, c *mautrix.Client, roomID id.RoomID) []string {
	t.Helper()
	resp, err := c.Messages(context.Background(), roomID, "", "", mautrix.DirectionBackward, nil, 200)
	if err != nil {
		t.Fatalf("messages: %v", err)
	}
	var out []string
	for _, ev := range resp.Chunk {
		if ev.Type == event.EventMessage {
			body, _ := ev.Content.Raw["body"].(string)
			out = append(out, body)
		}
	}
	slices.Reverse(out)
	return out
}

// sendPoll retries check until it returns "" (done) or 30 s pass, and
// fails with its last answer.
func sendPoll(t *testing.T, what string, check func() string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		if last = check(); last == "" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: %s", what, last)
}

// sendTxn is the body of a transaction from server from.
func sendTxn(from *testserver.Server, pdus ...[]byte) map[string]any {
	raws := make([]json.RawMessage, len(pdus))
	for i, p := range pdus {
		raws[i] = p
	}
	return map[string]any{"origin": from.Config.ServerName, "origin_server_ts": time.Now().UnixMilli(), "pdus": raws}
}

// sendMutate changes one top-level field of an event's JSON after it
// was signed (path "content.body" reaches one level down).
func sendMutate(t *testing.T, raw []byte, path string, value any) []byte {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	target := m
	keys := strings.Split(path, ".")
	for _, k := range keys[:len(keys)-1] {
		target = target[k].(map[string]any)
	}
	target[keys[len(keys)-1]] = value
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
