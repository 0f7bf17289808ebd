package federation_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestStrippedCreateEventOverFederation: the create event in an
// invitee's invite_state and a knocker's knock_state is the full event,
// origin_server_ts included (MSC4311, spec v1.16), when the room lives on
// another server: hs1 sends it whole in invite_room_state and
// knock_room_state, and hs2 passes it on whole.
func TestStrippedCreateEventOverFederation(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2 := net.Servers[0], net.Servers[1]
		alice := hs1.Register("alice", "password1234")
		bob := hs2.Register("bob", "password1234")
		carol := hs2.Register("carol", "password1234")
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Full create",
			InitialState: []*event.Event{{Type: event.StateJoinRules, Content: event.Content{Parsed: &event.JoinRulesEventContent{JoinRule: event.JoinRuleKnock}}}}})
		if err != nil {
			t.Fatal(err)
		}
		roomID := created.RoomID
		own, err := alice.SyncRequest(ctx, 0, "", "", false, event.PresenceOnline)
		if err != nil {
			t.Fatal(err)
		}
		var wantTS int64
		joined := own.Rooms.Join[roomID]
		for _, ev := range append(joined.State.Events, joined.Timeline.Events...) {
			if ev.Type == event.StateCreate {
				wantTS = ev.Timestamp
			}
		}
		if wantTS == 0 {
			t.Fatal("alice's sync has no create event")
		}

		if _, err := alice.InviteUser(ctx, roomID, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
			t.Fatalf("invite bob: %v", err)
		}
		if _, err := carol.KnockRoom(ctx, roomID.String(), &mautrix.ReqKnockRoom{Via: []string{"hs1.test"}}); err != nil {
			t.Fatalf("carol knocks: %v", err)
		}
		if ts := strippedCreateTS(t, bob, roomID, "invite", "invite_state"); ts != wantTS {
			t.Fatalf("bob's invite_state create event origin_server_ts = %d, want %d", ts, wantTS)
		}
		if ts := strippedCreateTS(t, carol, roomID, "knock", "knock_state"); ts != wantTS {
			t.Fatalf("carol's knock_state create event origin_server_ts = %d, want %d", ts, wantTS)
		}
	})
}

// strippedCreateTS is the origin_server_ts of the create event in a
// room's stripped state in c's initial /sync (raw: mautrix fills in
// fields a stripped event lacks).
func strippedCreateTS(t *testing.T, c *mautrix.Client, roomID id.RoomID, section, key string) int64 {
	t.Helper()
	var resp struct {
		Rooms map[string]map[id.RoomID]map[string]struct {
			Events []struct {
				Type     string `json:"type"`
				StateKey string `json:"state_key"`
				TS       int64  `json:"origin_server_ts"`
			} `json:"events"`
		} `json:"rooms"`
	}
	if _, err := c.MakeRequest(context.Background(), http.MethodGet, c.BuildClientURL("v3", "sync"), nil, &resp); err != nil {
		t.Fatal(err)
	}
	room, ok := resp.Rooms[section][roomID]
	if !ok {
		raw, _ := json.Marshal(resp.Rooms)
		t.Fatalf("%s's sync has no %s for %s: %s", c.UserID, section, roomID, raw)
	}
	for _, ev := range room[key].Events {
		if ev.Type == "m.room.create" && ev.StateKey == "" {
			return ev.TS
		}
	}
	t.Fatalf("%s's %s has no create event", c.UserID, key)
	return 0
}
