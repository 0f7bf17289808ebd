package admin_test

import (
	"context"
	"net/http"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testserver"
)

const noticePath = admBase + "/send_server_notice"

// TestSendServerNotice covers POST /_synapse/admin/v1/send_server_notice
// as Synapse serves it: admins only; the first notice makes the user's
// notices room (the system user's, named from the config, the user
// invited, tagged m.server_notice, where the user cannot speak); later
// notices go to the same room.
func TestSendServerNotice(t *testing.T) {
	testserver.EachEngine(t, func(c *config.Config) {
		c.Registration.SharedSecret = admSecret
		c.ServerNotices = config.ServerNotices{SystemMxidLocalpart: "notices", SystemMxidDisplayName: "Server Admin", RoomName: "Server Notices"}
	}, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		admin := s.RegisterAdmin("boss", "pw-boss-1")
		alice := s.Register("alice", "pw-alice-1")
		notice := func(token string, body map[string]any) (int, map[string]any) {
			t.Helper()
			return s.Do(t, http.MethodPost, noticePath, token, body)
		}
		text := func(body string) map[string]any { return map[string]any{"msgtype": "m.text", "body": body} }

		status, body := notice(alice.AccessToken, map[string]any{"user_id": alice.UserID, "content": text("hi")})
		testserver.WantError(t, "non-admin", status, body, http.StatusForbidden, "M_FORBIDDEN")
		status, body = notice(admin.AccessToken, map[string]any{"user_id": alice.UserID})
		testserver.WantError(t, "no content", status, body, http.StatusBadRequest, "M_MISSING_PARAM")
		status, body = notice(admin.AccessToken, map[string]any{"user_id": "@bob:elsewhere.test", "content": text("hi")})
		testserver.WantError(t, "remote user", status, body, http.StatusBadRequest, "M_UNKNOWN")
		status, body = notice(admin.AccessToken, map[string]any{"user_id": "@nobody:hs1.test", "content": text("hi")})
		testserver.WantError(t, "unknown user", status, body, http.StatusNotFound, "M_NOT_FOUND")
		status, body = notice(admin.AccessToken, map[string]any{"user_id": "@a\x00:hs1.test", "content": text("hi")})
		testserver.WantError(t, "NUL in user_id", status, body, http.StatusBadRequest, "M_INVALID_PARAM")

		status, body = notice(admin.AccessToken, map[string]any{"user_id": alice.UserID, "content": text("Maintenance at noon")})
		testserver.WantStatus(t, "first notice", status, body, http.StatusOK)
		first, _ := body["event_id"].(string)

		resp, err := alice.SyncRequest(ctx, 0, "", "", false, event.PresenceOnline)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Rooms.Invite) != 1 {
			t.Fatalf("alice's invites: %v", resp.Rooms.Invite)
		}
		var room id.RoomID
		for r := range resp.Rooms.Invite {
			room = r
		}
		var tags event.TagEventContent
		if err := alice.GetTagsWithCustomData(ctx, room, &tags); err != nil {
			t.Fatal(err)
		}
		if _, ok := tags.Tags["m.server_notice"]; !ok {
			t.Fatalf("tags of the notices room: %+v", tags)
		}
		if _, err := alice.JoinRoomByID(ctx, room); err != nil {
			t.Fatal(err)
		}
		status, body = notice(admin.AccessToken, map[string]any{"user_id": alice.UserID, "content": text("Done")})
		testserver.WantStatus(t, "second notice", status, body, http.StatusOK)
		second, _ := body["event_id"].(string)

		// PUT with a transaction ID: a retry answers the same event.
		var txnIDs []any
		for range 2 {
			status, body = s.Do(t, http.MethodPut, noticePath+"/t1", admin.AccessToken, map[string]any{"user_id": alice.UserID, "content": text("Again")})
			testserver.WantStatus(t, "notice with a transaction", status, body, http.StatusOK)
			txnIDs = append(txnIDs, body["event_id"])
		}
		retried, _ := txnIDs[0].(string)
		if retried == "" || txnIDs[1] != retried || retried == second {
			t.Fatalf("PUT twice with one transaction: %v (POST gave %s)", txnIDs, second)
		}
		msgs, err := alice.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 50)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, ev := range msgs.Chunk {
			if ev.Type == event.EventMessage {
				if ev.Sender != "@notices:hs1.test" {
					t.Fatalf("notice sent by %s", ev.Sender)
				}
				got = append(got, ev.ID.String())
			}
		}
		if len(got) != 3 || got[0] != retried || got[1] != second || got[2] != first {
			t.Fatalf("notices in the room: %v, want %s, %s, %s", got, retried, second, first)
		}
		var name event.RoomNameEventContent
		if err := alice.StateEvent(ctx, room, event.StateRoomName, "", &name); err != nil || name.Name != "Server Notices" {
			t.Fatalf("room name: %+v %v", name, err)
		}
		var member event.MemberEventContent
		if err := alice.StateEvent(ctx, room, event.StateMember, "@notices:hs1.test", &member); err != nil || member.Displayname != "Server Admin" {
			t.Fatalf("system user's member event: %+v %v", member, err)
		}
		if _, err := alice.SendText(ctx, room, "can I reply?"); err == nil {
			t.Fatal("alice may speak in her notices room")
		}
		// Nobody may register as the system user (Synapse: M_EXCLUSIVE).
		status, body = s.Do(t, http.MethodGet, "/_matrix/client/v3/register/available?username=notices", "", nil)
		testserver.WantError(t, "the system user's localpart", status, body, http.StatusBadRequest, "M_EXCLUSIVE")
		joined, err := alice.JoinedRooms(ctx)
		if err != nil || len(joined.JoinedRooms) != 1 {
			t.Fatalf("alice's rooms: %+v %v", joined, err)
		}

		// The admin renames the system user and the room: the next notice
		// goes to the same room, which now shows the new names.
		s.Config.ServerNotices.SystemMxidDisplayName = "Ops Team"
		s.Config.ServerNotices.RoomName = "Notices from Ops"
		s.Config.ServerNotices.RoomTopic = "Read me"
		s.Restart()
		s.Repoint(alice)
		s.Repoint(admin)
		status, body = notice(admin.AccessToken, map[string]any{"user_id": alice.UserID, "content": text("Renamed")})
		testserver.WantStatus(t, "notice after the rename", status, body, http.StatusOK)
		if err := alice.StateEvent(ctx, room, event.StateMember, "@notices:hs1.test", &member); err != nil || member.Displayname != "Ops Team" {
			t.Fatalf("system user's member event after the rename: %+v %v", member, err)
		}
		if err := alice.StateEvent(ctx, room, event.StateRoomName, "", &name); err != nil || name.Name != "Notices from Ops" {
			t.Fatalf("room name after the rename: %+v %v", name, err)
		}
		var topic event.TopicEventContent
		if err := alice.StateEvent(ctx, room, event.StateTopic, "", &topic); err != nil || topic.Topic != "Read me" {
			t.Fatalf("room topic after the rename: %+v %v", topic, err)
		}
		if joined, err := alice.JoinedRooms(ctx); err != nil || len(joined.JoinedRooms) != 1 || joined.JoinedRooms[0] != room {
			t.Fatalf("alice's rooms after the rename: %+v %v", joined, err)
		}
	})
}
