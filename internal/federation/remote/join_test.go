package remote

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/signing"
)

// hostileResident answers make_join and send_join as a malicious
// resident server might; every other request fails.
type hostileResident struct {
	fclient.FederationClient
	makeJoin fclient.RespMakeJoin
	sendJoin fclient.RespSendJoin
}

func (h *hostileResident) MakeJoin(context.Context, spec.ServerName, spec.ServerName, string, string) (fclient.RespMakeJoin, error) {
	return h.makeJoin, nil
}

func (h *hostileResident) SendJoin(context.Context, spec.ServerName, spec.ServerName, gomatrixserverlib.PDU) (fclient.RespSendJoin, error) {
	return h.sendJoin, nil
}

func (h *hostileResident) GetEvent(context.Context, spec.ServerName, spec.ServerName, string) (gomatrixserverlib.Transaction, error) {
	return gomatrixserverlib.Transaction{}, errors.New("no events")
}

func (h *hostileResident) SendJoinPartialState(ctx context.Context, o, d spec.ServerName, e gomatrixserverlib.PDU) (fclient.RespSendJoin, error) {
	return h.SendJoin(ctx, o, d, e)
}

// noKeys knows no server's keys.
type noKeys struct{}

func (noKeys) FetchKeys(context.Context, map[gomatrixserverlib.PublicKeyLookupRequest]spec.Timestamp) (map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult, error) {
	return nil, nil
}

func (noKeys) FetcherName() string { return "none" }

func (noKeys) StoreKeys(context.Context, map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult) error {
	return nil
}

// TestJoinSurvivesHostileResident runs the join handshake (performJoin)
// against answers that made gomatrixserverlib panic (a pseudo-ID room
// version, events whose room ID does not parse) and one whose events are
// not signed: the join fails with an error, nothing panics.
func TestJoinSurvivesHostileResident(t *testing.T) {
	const room, user = "!room:evil.test", "@alice:hs1.test"
	key, err := signing.Generate()
	if err != nil {
		t.Fatal(err)
	}
	event := func(typ, roomID, stateKey string, content map[string]any) spec.RawJSON {
		raw, _ := json.Marshal(map[string]any{
			"type": typ, "room_id": roomID, "sender": "@mallory:evil.test", "state_key": stateKey, "content": content,
			"origin_server_ts": 1, "depth": 1, "prev_events": []string{}, "auth_events": []string{},
			"hashes": map[string]string{"sha256": "AAAA"}, "signatures": map[string]any{},
		})
		return raw
	}
	template := gomatrixserverlib.ProtoEvent{Type: spec.MRoomMember, RoomID: room, Depth: 2,
		PrevEvents: []string{"$prev"}, AuthEvents: []string{"$create"}, Content: []byte(`{"membership":"join"}`)}
	goodMake := fclient.RespMakeJoin{RoomVersion: "10", JoinEvent: template}
	create := event(spec.MRoomCreate, "!a:b:c", "", map[string]any{"room_version": "10", "creator": "@mallory:evil.test"})
	goodCreate := event(spec.MRoomCreate, room, "", map[string]any{"room_version": "10", "creator": "@mallory:evil.test"})
	for _, tc := range []struct {
		name string
		h    hostileResident
	}{
		{"pseudo-ID room version", hostileResident{makeJoin: fclient.RespMakeJoin{RoomVersion: gomatrixserverlib.RoomVersionPseudoIDs, JoinEvent: template}}},
		{"signed join with a bad room ID", hostileResident{makeJoin: goodMake, sendJoin: fclient.RespSendJoin{
			Event: event(spec.MRoomMember, "!a:b:c", user, map[string]any{"membership": "join"})}}},
		{"create event with a bad room ID", hostileResident{makeJoin: goodMake, sendJoin: fclient.RespSendJoin{
			AuthEvents: gomatrixserverlib.EventJSONs{create}, StateEvents: gomatrixserverlib.EventJSONs{create}}}},
		{"unsigned state", hostileResident{makeJoin: goodMake, sendJoin: fclient.RespSendJoin{
			AuthEvents: gomatrixserverlib.EventJSONs{goodCreate}, StateEvents: gomatrixserverlib.EventJSONs{goodCreate}}}},
		{"unsigned state, members omitted", hostileResident{makeJoin: goodMake, sendJoin: fclient.RespSendJoin{
			MembersOmitted: true, ServersInRoom: []string{"evil.test"},
			StateEvents: gomatrixserverlib.EventJSONs{goodCreate}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {

			uid, _ := spec.NewUserID(user, true)
			rid, _ := spec.NewRoomID(room)
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("PerformJoin panicked: %v", p)
				}
			}()
			f := New(Deps{ServerName: "hs1.test", Key: key, Client: &tc.h,
				KeyRing: &gomatrixserverlib.KeyRing{KeyDatabase: noKeys{}}})
			a, err := f.performJoin(context.Background(), "evil.test", uid, rid, map[string]any{}, true)
			if err == nil {
				t.Fatalf("the join succeeded with %d state events", len(a.state))
			}
		})
	}
}
