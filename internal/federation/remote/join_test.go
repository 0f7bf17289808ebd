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

// noKeys knows no server's keys.
type noKeys struct{}

func (noKeys) FetchKeys(context.Context, map[gomatrixserverlib.PublicKeyLookupRequest]spec.Timestamp) (map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult, error) {
	return nil, nil
}

func (noKeys) FetcherName() string { return "none" }

func (noKeys) StoreKeys(context.Context, map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult) error {
	return nil
}

// TestJoinSurvivesHostileResident runs PerformJoin through joinClient
// against answers that made gomatrixserverlib panic (a pseudo-ID room
// version, events whose room ID does not parse): the join fails with an
// error, nothing panics.
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
	for _, tc := range []struct {
		name string
		h    hostileResident
	}{
		{"pseudo-ID room version", hostileResident{makeJoin: fclient.RespMakeJoin{RoomVersion: gomatrixserverlib.RoomVersionPseudoIDs, JoinEvent: template}}},
		{"signed join with a bad room ID", hostileResident{makeJoin: goodMake, sendJoin: fclient.RespSendJoin{
			Event: event(spec.MRoomMember, "!a:b:c", user, map[string]any{"membership": "join"})}}},
		{"create event with a bad room ID", hostileResident{makeJoin: goodMake, sendJoin: fclient.RespSendJoin{
			AuthEvents: gomatrixserverlib.EventJSONs{create}, StateEvents: gomatrixserverlib.EventJSONs{create}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uid, _ := spec.NewUserID(user, true)
			rid, _ := spec.NewRoomID(room)
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("PerformJoin panicked: %v", p)
				}
			}()
			_, ferr := gomatrixserverlib.PerformJoin(context.Background(), joinClient{c: &tc.h}, gomatrixserverlib.PerformJoinInput{
				UserID: uid, RoomID: rid, ServerName: "evil.test", Content: map[string]any{},
				PrivateKey: key.Private, KeyID: gomatrixserverlib.KeyID(key.ID), KeyRing: &gomatrixserverlib.KeyRing{KeyDatabase: noKeys{}},
				EventProvider: func(gomatrixserverlib.RoomVersion, []string) ([]gomatrixserverlib.PDU, error) {
					return nil, errors.New("no events")
				},
				UserIDQuerier: UserIDForSender,
			})
			if ferr == nil {
				t.Fatal("the join succeeded")
			}
		})
	}
}
