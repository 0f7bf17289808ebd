package federation_test

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
	"github.com/myelin-chat/myelin/internal/signing"
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

// remoteMembership changes the membership of a user of server from in a
// room on server to without going through federation's membership
// endpoints: it builds the membership event as from would (on top of the
// room's forward extremities, auth events from to's current state),
// signs it with from's key and hands it to to's room engine as
// federation input would. Joins need a public room.
func remoteMembership(t testing.TB, from, to *testserver.Server, roomID, localpart, membership string) *rooms.Event {
	t.Helper()
	ctx := context.Background()
	engine := to.Engine()
	userID := from.UserID(localpart)
	v, err := engine.RoomVersion(ctx, roomID)
	if err != nil {
		t.Fatal(err)
	}
	prevs, depth, err := engine.Extremities(ctx, roomID)
	if err != nil {
		t.Fatal(err)
	}
	state, err := engine.CurrentState(ctx, roomID)
	if err != nil {
		t.Fatal(err)
	}
	keys := []roommodel.StateKey{{Type: spec.MRoomPowerLevels}, {Type: spec.MRoomMember, StateKey: userID}}
	if !v.DomainlessRoomIDs() {
		keys = append(keys, roommodel.StateKey{Type: spec.MRoomCreate})
	}
	if membership == spec.Join {
		keys = append(keys, roommodel.StateKey{Type: spec.MRoomJoinRules})
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
		PrevEvents: prevs, AuthEvents: auth, Depth: depth + 1,
	}).Build(time.Now(), spec.ServerName(from.Config.ServerName), gomatrixserverlib.KeyID(key.ID), key.Private)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := engine.Receive(ctx, pdu)
	if err != nil || ev.Status != roommodel.Accepted {
		t.Fatalf("%s %s in %s: %+v %v", userID, membership, roomID, ev, err)
	}
	return ev
}

// remoteJoin makes @localpart of server from join a public room on to.
func remoteJoin(t testing.TB, from, to *testserver.Server, roomID, localpart string) *rooms.Event {
	t.Helper()
	return remoteMembership(t, from, to, roomID, localpart, spec.Join)
}
