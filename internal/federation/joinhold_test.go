package federation

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/federation/remote"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
	"github.com/myelin-chat/myelin/internal/signing"
	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// eagerResident is b.test holding a room a.test joins: once it has the
// join (send_join) and before it answers, it has sent a.test the room's
// next event, as a resident server does for a joined server; the
// joiner is then still waiting for the answer, the room unknown to it.
type eagerResident struct {
	fclient.FederationClient
	makeJoin fclient.RespMakeJoin
	state    gomatrixserverlib.EventJSONs
	// afterJoin sends the event that follows the join.
	afterJoin func(join gomatrixserverlib.PDU)
}

func (r *eagerResident) MakeJoin(context.Context, spec.ServerName, spec.ServerName, string, string) (fclient.RespMakeJoin, error) {
	return r.makeJoin, nil
}

func (r *eagerResident) SendJoin(_ context.Context, _, _ spec.ServerName, join gomatrixserverlib.PDU) (fclient.RespSendJoin, error) {
	r.afterJoin(join)
	return fclient.RespSendJoin{StateEvents: r.state, AuthEvents: r.state, Origin: "b.test"}, nil
}

// TestEventSentDuringJoinIsKept: an event the resident server sends
// while this server is still storing its join (the room unknown here
// until then) is received once the join is stored, before Join returns,
// rather than refused for an unknown room and lost, since no later
// event names it. Under load this lost the rules a republished
// reputation feed wrote while another server joined it
// (TestReputationRepublish).
func TestEventSentDuringJoinIsKept(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		db, err := store.Open(ctx, dbURL, 4)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		stream, err := rooms.OpenStream(ctx, db, nil)
		if err != nil {
			t.Fatal(err)
		}
		localKey, err := signing.Generate()
		if err != nil {
			t.Fatal(err)
		}
		remotePub, remoteKey, _ := ed25519.GenerateKey(nil)
		engine := rooms.New(db, stream, bus.New(), rooms.Options{ServerName: "a.test", KeyID: gomatrixserverlib.KeyID(localKey.ID),
			PrivateKey: localKey.Private, DefaultVersion: "10"})
		keyRing := &gomatrixserverlib.KeyRing{KeyDatabase: fixedKeys{server: "b.test", key: remotePub}}
		log := slog.New(slog.NewTextHandler(io.Discard, nil))

		// b.test's room: rob created it, public.
		const roomID, rob = "!held:b.test", "@rob:b.test"
		v := gomatrixserverlib.MustGetRoomVersion(gomatrixserverlib.RoomVersionV10)
		build := func(typ, stateKey string, content any, depth int64, prev []string, auth ...gomatrixserverlib.PDU) gomatrixserverlib.PDU {
			t.Helper()
			raw, _ := json.Marshal(content)
			authIDs := []string{}
			for _, a := range auth {
				authIDs = append(authIDs, a.EventID())
			}
			pdu, err := v.NewEventBuilderFromProtoEvent(&gomatrixserverlib.ProtoEvent{SenderID: rob, RoomID: roomID, Type: typ,
				StateKey: &stateKey, Content: raw, PrevEvents: prev, AuthEvents: authIDs, Depth: depth,
			}).Build(time.Now(), "b.test", "ed25519:r", remoteKey)
			if err != nil {
				t.Fatal(err)
			}
			return pdu
		}
		create := build(spec.MRoomCreate, "", map[string]any{"creator": rob, "room_version": "10"}, 1, []string{})
		robJoin := build(spec.MRoomMember, rob, map[string]any{"membership": spec.Join}, 2, []string{create.EventID()}, create)
		power := build(spec.MRoomPowerLevels, "", map[string]any{"users": map[string]int{rob: 100}}, 3,
			[]string{robJoin.EventID()}, create, robJoin)
		rules := build(spec.MRoomJoinRules, "", map[string]any{"join_rule": spec.Public}, 4,
			[]string{power.EventID()}, create, robJoin, power)
		var state gomatrixserverlib.EventJSONs
		for _, p := range []gomatrixserverlib.PDU{create, robJoin, power, rules} {
			state = append(state, p.JSON())
		}

		resident := &eagerResident{state: state, makeJoin: fclient.RespMakeJoin{RoomVersion: "10", JoinEvent: gomatrixserverlib.ProtoEvent{
			Type: spec.MRoomMember, RoomID: roomID, Depth: 5, PrevEvents: []string{rules.EventID()},
			AuthEvents: []string{create.EventID(), power.EventID(), rules.EventID()}, Content: []byte(`{"membership":"join"}`)}}}
		rs := remote.New(remote.Deps{ServerName: "a.test", Key: localKey, KeyRing: keyRing, Client: resident, Rooms: engine, Log: log})
		a := New(Deps{ServerName: "a.test", Rooms: engine, Store: db, KeyRing: keyRing, Remote: rs, Log: log})

		var rule gomatrixserverlib.PDU
		resident.afterJoin = func(join gomatrixserverlib.PDU) {
			if _, err := engine.RoomVersion(ctx, roomID); err == nil {
				t.Error("the room is known before the joiner has the send_join answer")
			}
			rule = build("m.policy.rule.user", "rule:@spam:c.test", map[string]any{"entity": "@spam:c.test", "recommendation": "m.ban"},
				join.Depth()+1, []string{join.EventID()}, create, robJoin, power)
			body, _ := json.Marshal(txnBody{PDUs: []json.RawMessage{rule.JSON()}})
			hr := httptest.NewRequest(http.MethodPut, "/_matrix/federation/v1/send/t1", nil)
			hr.SetPathValue("txnId", "t1")
			out, err := a.sendTransaction(&Request{Request: hr, Origin: "b.test", Content: body})
			if err != nil {
				t.Errorf("the transaction sent during the join: %v", err)
				return
			}
			var resp fclient.RespSend
			_ = json.Unmarshal(out.(json.RawMessage), &resp)
			if res, ok := resp.PDUs[rule.EventID()]; ok && res.Error != "" {
				t.Errorf("the event sent during the join was refused: %s", res.Error)
			}
		}

		if err := rs.Join(ctx, "@alice:a.test", roomID, []string{"b.test"}, nil); err != nil {
			t.Fatalf("join: %v", err)
		}
		current, err := engine.CurrentState(ctx, roomID)
		if err != nil {
			t.Fatal(err)
		}
		got, err := engine.StateEvent(ctx, current, "m.policy.rule.user", "rule:@spam:c.test")
		if err != nil || got == nil || got.EventID() != rule.EventID() {
			t.Fatalf("after the join the rule sent during it is %v (%v), want %s in the room's state", got, err, rule.EventID())
		}
		if got.Status != roommodel.Accepted {
			t.Fatalf("the rule sent during the join has status %v, want accepted", got.Status)
		}
	})
}
