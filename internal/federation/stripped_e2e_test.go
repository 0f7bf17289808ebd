package federation_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
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
		state, timeline := testserver.JoinedEvents(own, roomID)
		for _, ev := range append(state, timeline...) {
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

// TestInviteRoomStateValidated: an invite into a version 12 room is
// refused with 400 M_INVALID_PARAM unless its invite_room_state holds the
// room's create event and only whole, signed events of the room (v1.16,
// MSC4311, which servers SHOULD apply from version 12); with the create
// event whole it is countersigned.
func TestInviteRoomStateValidated(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, nil, func(t *testing.T, net *testserver.Network) {
		ctx := context.Background()
		hs1, hs2 := net.Servers[0], net.Servers[1]
		alice := hs1.Register("alice", "password1234")
		hs2.Register("bob", "password1234")
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Checked", RoomVersion: "12"})
		if err != nil {
			t.Fatal(err)
		}
		roomID := created.RoomID.String()
		var create, name json.RawMessage
		for _, ev := range sendRoomEvents(t, hs1, roomID) {
			switch ev.Type() {
			case "m.room.create":
				create = ev.JSON()
			case "m.room.name":
				name = ev.JSON()
			}
		}
		bob := "@bob:hs2.test"
		invite := sendBuild(t, hs1, hs1, roomID, alice.UserID.String(), "m.room.member", &bob, map[string]string{"membership": "invite"})
		path := "/_matrix/federation/v2/invite/" + url.PathEscape(roomID) + "/" + url.PathEscape(invite.EventID())
		send := func(state ...json.RawMessage) (int, map[string]any) {
			return net.SignedRequest(t, hs1, hs2, http.MethodPut, path,
				map[string]any{"room_version": "12", "event": json.RawMessage(invite.JSON()), "invite_room_state": state})
		}
		stripped := func(raw json.RawMessage) json.RawMessage {
			var ev struct {
				Type     string          `json:"type"`
				StateKey string          `json:"state_key"`
				Sender   string          `json:"sender"`
				Content  json.RawMessage `json:"content"`
			}
			if err := json.Unmarshal(raw, &ev); err != nil {
				t.Fatal(err)
			}
			out, _ := json.Marshal(ev)
			return out
		}
		// A signed field changed: the content is not signed (only its
		// hash), the timestamp is.
		var forgedEv map[string]any
		if err := json.Unmarshal(name, &forgedEv); err != nil {
			t.Fatal(err)
		}
		forgedEv["origin_server_ts"] = forgedEv["origin_server_ts"].(float64) + 1
		forged, _ := json.Marshal(forgedEv)

		st, body := send()
		testserver.WantError(t, "no create event", st, body, http.StatusBadRequest, "M_INVALID_PARAM")
		st, body = send(stripped(create))
		testserver.WantError(t, "stripped create event", st, body, http.StatusBadRequest, "M_INVALID_PARAM")
		st, body = send(create, stripped(name))
		testserver.WantError(t, "a stripped entry", st, body, http.StatusBadRequest, "M_INVALID_PARAM")
		st, body = send(create, forged)
		testserver.WantError(t, "an entry with a broken signature", st, body, http.StatusBadRequest, "M_INVALID_PARAM")
		st, body = send(create, name)
		testserver.WantStatus(t, "whole, signed stripped state", st, body, http.StatusOK)
	})
}
