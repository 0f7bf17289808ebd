package federation_test

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/signing"
	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// serverKey is a test server's signing key, read from its key file.
func serverKey(t testing.TB, s *testserver.Server) signing.Key {
	t.Helper()
	raw, err := os.ReadFile(s.Config.SigningKeyPath())
	if err != nil {
		t.Fatal(err)
	}
	key, err := signing.Parse(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// remoteMembership makes a user of server from a member of a room on
// server to, until federated joins exist: it builds the membership event
// as from would (on top of the room's latest event, which reader, a
// member on to, reads; auth events from to's current state), signs it
// with from's key and hands it to to's room engine as federation input
// would. Joins need a public room.
func remoteMembership(t testing.TB, from, to *testserver.Server, reader *mautrix.Client, roomID, localpart, membership string) *rooms.Event {
	t.Helper()
	ctx := context.Background()
	engine := to.Engine()
	userID := from.UserID(localpart)
	v, err := engine.RoomVersion(ctx, roomID)
	if err != nil {
		t.Fatal(err)
	}
	latest, err := reader.Messages(ctx, id.RoomID(roomID), "", "", mautrix.DirectionBackward, nil, 1)
	if err != nil || len(latest.Chunk) != 1 {
		t.Fatalf("latest event of %s: %v", roomID, err)
	}
	prev, err := engine.Event(ctx, latest.Chunk[0].ID.String())
	if err != nil {
		t.Fatal(err)
	}
	state, err := engine.CurrentState(ctx, roomID)
	if err != nil {
		t.Fatal(err)
	}
	keys := []store.StateKey{{Type: spec.MRoomPowerLevels}, {Type: spec.MRoomMember, StateKey: userID}}
	if !v.DomainlessRoomIDs() {
		keys = append(keys, store.StateKey{Type: spec.MRoomCreate})
	}
	if membership == spec.Join {
		keys = append(keys, store.StateKey{Type: spec.MRoomJoinRules})
	}
	authEvs, err := engine.StateEvents(ctx, state, keys...)
	if err != nil {
		t.Fatal(err)
	}
	var auth []string
	for _, ev := range authEvs {
		auth = append(auth, ev.EventID())
	}
	content, _ := json.Marshal(map[string]string{"membership": membership})
	key := serverKey(t, from)
	pdu, err := v.NewEventBuilderFromProtoEvent(&gomatrixserverlib.ProtoEvent{
		SenderID: userID, RoomID: roomID, Type: spec.MRoomMember, StateKey: &userID, Content: content,
		PrevEvents: []string{prev.EventID()}, AuthEvents: auth, Depth: prev.Depth() + 1,
	}).Build(time.Now(), spec.ServerName(from.Config.ServerName), gomatrixserverlib.KeyID(key.ID), key.Private)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := engine.Receive(ctx, pdu)
	if err != nil || ev.Status != store.EventAccepted {
		t.Fatalf("%s %s in %s: %+v %v", userID, membership, roomID, ev, err)
	}
	return ev
}

// remoteJoin makes @localpart of server from join a public room on to.
func remoteJoin(t testing.TB, from, to *testserver.Server, reader *mautrix.Client, roomID, localpart string) *rooms.Event {
	t.Helper()
	return remoteMembership(t, from, to, reader, roomID, localpart, spec.Join)
}
