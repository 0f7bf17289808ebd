package clientapi_test

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestRoomVersion12Creators drives room version 12's creator rules as a
// client meets them (spec v1.16, MSC4289/MSC4291/MSC4311): creators in
// the power levels' users are 400 M_BAD_JSON at createRoom, state send
// and upgrade; the default tombstone level is 150; trusted_private_chat
// invitees become additional creators; an upgrade into v12 takes
// additional_creators, names no predecessor event and gives the old
// creators no level; m.room.create into an existing room is 400; invite
// and knock stripped state carry the full create event.
func TestRoomVersion12Creators(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice, bob, carol, dave := s.Register("alice", "pw"), s.Register("bob", "pw"), s.Register("carol", "pw"), s.Register("dave", "pw")
		create := func(body map[string]any) (int, map[string]any) {
			return s.Do(t, http.MethodPost, "/_matrix/client/v3/createRoom", alice.AccessToken, body)
		}

		status, body := create(map[string]any{"room_version": "12",
			"power_level_content_override": map[string]any{"users": map[string]any{alice.UserID.String(): 100}}})
		testserver.WantError(t, "createRoom naming the creator in users", status, body, http.StatusBadRequest, "M_BAD_JSON")
		status, body = create(map[string]any{"room_version": "12",
			"creation_content":             map[string]any{"additional_creators": []string{bob.UserID.String()}},
			"power_level_content_override": map[string]any{"users": map[string]any{bob.UserID.String(): 50}}})
		testserver.WantError(t, "createRoom naming an additional creator in users", status, body, http.StatusBadRequest, "M_BAD_JSON")
		status, body = create(map[string]any{"room_version": "12", "initial_state": []map[string]any{{
			"type": "m.room.power_levels", "state_key": "", "content": map[string]any{"users": map[string]any{alice.UserID.String(): 100}}}}})
		testserver.WantError(t, "createRoom with initial power levels naming the creator", status, body, http.StatusBadRequest, "M_BAD_JSON")

		status, body = create(map[string]any{"room_version": "12", "preset": "public_chat",
			"creation_content": map[string]any{"additional_creators": []string{bob.UserID.String()}}})
		testserver.WantStatus(t, "createRoom v12", status, body, http.StatusOK)
		room := body["room_id"].(string)
		pl := upgState(t, alice, id.RoomID(room), "m.room.power_levels", "")
		if events, _ := pl["events"].(map[string]any); events["m.room.tombstone"] != float64(150) {
			t.Fatalf("v12 default tombstone level: %v, want 150", pl["events"])
		}
		if users, _ := pl["users"].(map[string]any); len(users) != 0 {
			t.Fatalf("v12 power levels name creators: %v", users)
		}
		path := "/_matrix/client/v3/rooms/" + room + "/state/"
		status, body = s.Do(t, http.MethodPut, path+"m.room.power_levels", alice.AccessToken, map[string]any{
			"users": map[string]any{bob.UserID.String(): 100}, "events": map[string]any{"m.room.tombstone": 150}})
		testserver.WantError(t, "power levels naming an additional creator", status, body, http.StatusBadRequest, "M_BAD_JSON")
		status, body = s.Do(t, http.MethodPut, path+"m.room.create", alice.AccessToken, map[string]any{"room_version": "12"})
		testserver.WantError(t, "m.room.create into an existing room", status, body, http.StatusBadRequest, "M_BAD_JSON")
		status, body = s.Do(t, http.MethodPut, "/_matrix/client/v3/rooms/"+room+"/send/m.room.create/t1", alice.AccessToken, map[string]any{})
		testserver.WantError(t, "m.room.create message into an existing room", status, body, http.StatusBadRequest, "M_BAD_JSON")

		// Before v12 the creator's level is an ordinary 100.
		status, body = create(map[string]any{"room_version": "11"})
		testserver.WantStatus(t, "createRoom v11", status, body, http.StatusOK)
		if events, _ := upgState(t, alice, id.RoomID(body["room_id"].(string)), "m.room.power_levels", "")["events"].(map[string]any); events["m.room.tombstone"] != float64(100) {
			t.Fatalf("v11 default tombstone level: %v, want 100", events)
		}

		// trusted_private_chat: the invitee is an additional creator.
		status, body = create(map[string]any{"room_version": "12", "preset": "trusted_private_chat", "invite": []string{dave.UserID.String()}})
		testserver.WantStatus(t, "createRoom trusted_private_chat", status, body, http.StatusOK)
		trusted := id.RoomID(body["room_id"].(string))
		if ac, _ := upgState(t, alice, trusted, "m.room.create", "")["additional_creators"].([]any); !slices.Equal(ac, []any{dave.UserID.String()}) {
			t.Fatalf("trusted_private_chat additional_creators = %v, want [dave]", ac)
		}
		if users, _ := upgState(t, alice, trusted, "m.room.power_levels", "")["users"].(map[string]any); len(users) != 0 {
			t.Fatalf("trusted_private_chat power levels name creators: %v", users)
		}

		// The invite's stripped state carries the whole create event.
		inv := sySync(t, dave, nil).Rooms.Invite[string(trusted)]
		if inv == nil || inv.InviteState == nil {
			t.Fatal("dave's invite missing")
		}
		st := syFind(inv.InviteState.Events, "m.room.create", "")
		if st == nil || st.OriginTS == 0 || st.Sender != alice.UserID.String() {
			t.Fatalf("invite_state create event is not the full event: %+v", st)
		}

		// Knock: the knocker's stripped state too.
		status, body = create(map[string]any{"room_version": "12", "initial_state": []map[string]any{{
			"type": "m.room.join_rules", "state_key": "", "content": map[string]any{"join_rule": "knock"}}}})
		testserver.WantStatus(t, "createRoom knock", status, body, http.StatusOK)
		knock := body["room_id"].(string)
		if _, err := carol.KnockRoom(ctx, knock, &mautrix.ReqKnockRoom{}); err != nil {
			t.Fatal(err)
		}
		kn := sySync(t, carol, nil).Rooms.Knock[knock]
		if kn == nil || kn.KnockState == nil {
			t.Fatal("carol's knock missing")
		}
		if st := syFind(kn.KnockState.Events, "m.room.create", ""); st == nil || st.OriginTS == 0 {
			t.Fatalf("knock_state create event is not the full event: %+v", st)
		}

		// Upgrade v12 to v12: additional_creators taken, the old
		// additional creator (bob) gets no level, no predecessor event.
		if _, err := bob.JoinRoomByID(ctx, id.RoomID(room)); err != nil {
			t.Fatal(err)
		}
		status, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/rooms/"+room+"/upgrade", alice.AccessToken,
			map[string]any{"new_version": "12", "additional_creators": []string{"not a user"}})
		testserver.WantError(t, "upgrade with an invalid additional creator", status, body, http.StatusBadRequest, "M_BAD_JSON")
		newRoom, err := upgUpgrade(alice, id.RoomID(room), map[string]any{"new_version": "12", "additional_creators": []string{carol.UserID.String()}})
		if err != nil {
			t.Fatal(err)
		}
		nc := upgState(t, alice, newRoom, "m.room.create", "")
		if ac, _ := nc["additional_creators"].([]any); !slices.Equal(ac, []any{carol.UserID.String()}) {
			t.Fatalf("upgraded room's additional_creators = %v, want [carol]", ac)
		}
		if pred, _ := nc["predecessor"].(map[string]any); pred["room_id"] != room || pred["event_id"] != nil {
			t.Fatalf("v12 predecessor = %v, want the room ID without event_id", pred)
		}
		if users, _ := upgState(t, alice, newRoom, "m.room.power_levels", "")["users"].(map[string]any); len(users) != 0 {
			t.Fatalf("upgraded room's power levels name users: %v (old creators get no level)", users)
		}
	})
}
