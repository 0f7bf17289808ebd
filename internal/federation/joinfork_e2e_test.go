package federation_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/myelin-chat/myelin/internal/testserver"
	"github.com/myelin-chat/myelin/internal/testserver/peer"
)

// TestEventConcurrentWithJoinSentToJoiner: an event the room's server
// stores between a joining server's make_join and its send_join is
// concurrent with the join (the join's prev_events predate it): it is
// not in the state send_join answers with, and the joining server was
// not in the room when it was stored. hs1 sends it to the joining server
// once it has the join, rather than leave it unknown there until the
// room's next event (a policy list's rule could stay unknown for as long
// as the list stays quiet; TestReputationRepublish failed so).
func TestEventConcurrentWithJoinSentToJoiner(t *testing.T) {
	peer.EachEngine(t, 1, nil, func(t *testing.T, net *testserver.Network, p *peer.Peer) {
		ctx := context.Background()
		hs1 := net.Servers[0]
		alice := hs1.Register("alice", "password")
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		room := created.RoomID.String()
		const topic = "set during the join"
		var heard atomic.Bool
		p.OnSend(func(pdu json.RawMessage) {
			if bytes.Contains(pdu, []byte(topic)) {
				heard.Store(true)
			}
		})

		bob := p.UserID("bob")
		status, data := p.Request(t, hs1, http.MethodGet, "/_matrix/federation/v1/make_join/"+url.PathEscape(room)+"/"+url.PathEscape(bob)+"?ver=12&ver=10", nil)
		if status != http.StatusOK {
			t.Fatalf("make_join: %d %s", status, data)
		}
		var template struct {
			Event       gomatrixserverlib.ProtoEvent  `json:"event"`
			RoomVersion gomatrixserverlib.RoomVersion `json:"room_version"`
		}
		if err := json.Unmarshal(data, &template); err != nil {
			t.Fatal(err)
		}
		// Between make_join and send_join.
		if _, err := alice.SendStateEvent(ctx, created.RoomID, event.StateTopic, "", map[string]string{"topic": topic}); err != nil {
			t.Fatal(err)
		}
		v, err := gomatrixserverlib.GetRoomVersion(template.RoomVersion)
		if err != nil {
			t.Fatal(err)
		}
		join, err := v.NewEventBuilderFromProtoEvent(&template.Event).Build(time.Now(), "peer.test", p.KeyID, p.Key)
		if err != nil {
			t.Fatal(err)
		}
		status, data = p.Request(t, hs1, http.MethodPut, "/_matrix/federation/v2/send_join/"+url.PathEscape(room)+"/"+url.PathEscape(join.EventID()), json.RawMessage(join.JSON()))
		if status != http.StatusOK {
			t.Fatalf("send_join: %d %s", status, data)
		}
		if bytes.Contains(data, []byte(topic)) {
			t.Fatal("the send_join answer holds the topic set after make_join: the interleaving was not forced")
		}
		deadline := time.Now().Add(20 * time.Second)
		for !heard.Load() {
			if time.Now().After(deadline) {
				t.Fatal("hs1 never sent the joining server the topic set between its make_join and send_join")
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}
