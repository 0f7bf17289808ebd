package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestReportForwardedToModerators: with reports.forward_to_moderators,
// a report of an event reaches, as a server notice, the room's local
// moderators (power at least "redact", above users_default: the
// creator and a moderator at 50), not a member at the default level, not
// the event's sender even when a moderator, and not the reporter; the
// notice names the room, event, reporter and reason but not the event's
// content; the admin listing and detail show forwarded_to. Reports of
// rooms are not forwarded.
func TestReportForwardedToModerators(t *testing.T) {
	testserver.EachEngine(t, func(c *config.Config) {
		c.Registration.SharedSecret = admSecret
		c.ServerNotices = config.ServerNotices{SystemMxidLocalpart: "notices", RoomName: "Server Notices"}
		c.Reports.ForwardToModerators = true
	}, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		admin := s.RegisterAdmin("root", "pw-root-123")
		owner, mia, sam, bob, rita := s.Register("owner", "pw-owner-1"), s.Register("mia", "pw-mia-1"),
			s.Register("sam", "pw-sam-1"), s.Register("bob", "pw-bob-1"), s.Register("rita", "pw-rita-1")
		room, err := owner.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Market"})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []*mautrix.Client{mia, sam, bob, rita} {
			if _, err := c.JoinRoomByID(ctx, room.RoomID); err != nil {
				t.Fatal(err)
			}
		}
		var pl map[string]any
		if err := owner.StateEvent(ctx, room.RoomID, event.StatePowerLevels, "", &pl); err != nil {
			t.Fatal(err)
		}
		users, _ := pl["users"].(map[string]any)
		if users == nil {
			users = map[string]any{}
		}
		users[string(mia.UserID)], users[string(sam.UserID)] = 50, 50
		pl["users"] = users
		if _, err := owner.SendStateEvent(ctx, room.RoomID, event.StatePowerLevels, "", pl); err != nil {
			t.Fatal(err)
		}
		const secret = "cheap pills here"
		msg, err := sam.SendText(ctx, room.RoomID, secret)
		if err != nil {
			t.Fatal(err)
		}
		status, body := s.Do(t, http.MethodPost, fmt.Sprintf("/_matrix/client/v3/rooms/%s/report/%s", room.RoomID, msg.EventID), rita.AccessToken,
			map[string]any{"reason": "selling pills"})
		testserver.WantStatus(t, "report", status, body, http.StatusOK)
		status, body = s.Do(t, http.MethodPost, fmt.Sprintf("/_matrix/client/v3/rooms/%s/report", room.RoomID), rita.AccessToken,
			map[string]any{"reason": "whole room"})
		testserver.WantStatus(t, "room report", status, body, http.StatusOK)

		// The admin sees who received it, in the listing and the detail.
		status, list := s.Do(t, http.MethodGet, admBase+"/event_reports", admin.AccessToken, nil)
		testserver.WantStatus(t, "event_reports", status, list, http.StatusOK)
		entry := list["event_reports"].([]any)[0].(map[string]any)
		want := fmt.Sprint([]string{string(mia.UserID), string(owner.UserID)})
		if fmt.Sprint(entry["forwarded_to"]) != want {
			t.Fatalf("forwarded_to in the listing: %v, want %s", entry["forwarded_to"], want)
		}
		status, one := s.Do(t, http.MethodGet, fmt.Sprintf("%s/event_reports/%v", admBase, entry["id"]), admin.AccessToken, nil)
		testserver.WantStatus(t, "event report", status, one, http.StatusOK)
		if fmt.Sprint(one["forwarded_to"]) != want {
			t.Fatalf("forwarded_to in the detail: %v", one["forwarded_to"])
		}
		status, rooms := s.Do(t, http.MethodGet, admBase+"/room_reports", admin.AccessToken, nil)
		testserver.WantStatus(t, "room_reports", status, rooms, http.StatusOK)
		if f := rooms["room_reports"].([]any)[0].(map[string]any)["forwarded_to"]; fmt.Sprint(f) != "[]" {
			t.Fatalf("a room report was forwarded: %v", f)
		}

		// Each moderator has one notice, in a notices room they are invited to.
		for _, mod := range []*mautrix.Client{mia, owner} {
			resp, err := mod.SyncRequest(ctx, 0, "", "", false, event.PresenceOnline)
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Rooms.Invite) != 1 {
				t.Fatalf("%s's invites: %v", mod.UserID, resp.Rooms.Invite)
			}
			var notices id.RoomID
			for r := range resp.Rooms.Invite {
				notices = r
			}
			if _, err := mod.JoinRoomByID(ctx, notices); err != nil {
				t.Fatal(err)
			}
			msgs, err := mod.Messages(ctx, notices, "", "", mautrix.DirectionBackward, nil, 50)
			if err != nil {
				t.Fatal(err)
			}
			var found []*event.Event
			for _, ev := range msgs.Chunk {
				if ev.Type == event.EventMessage && ev.Sender == id.UserID("@notices:"+s.Config.ServerName) {
					found = append(found, ev)
				}
			}
			if len(found) != 1 {
				t.Fatalf("%s's notices: %d of %d events", mod.UserID, len(found), len(msgs.Chunk))
			}
			raw, _ := json.Marshal(found[0].Content.Raw)
			text := string(raw)
			for _, part := range []string{string(room.RoomID), string(msg.EventID), string(rita.UserID), "selling pills", "Market", "m.notice"} {
				if !strings.Contains(text, part) {
					t.Fatalf("%s's notice lacks %q: %s", mod.UserID, part, text)
				}
			}
			if strings.Contains(text, secret) {
				t.Fatalf("the notice carries the event's content: %s", text)
			}
		}
		// Not a plain member, not the sender (a moderator), not the reporter.
		for _, c := range []*mautrix.Client{bob, sam, rita} {
			resp, err := c.SyncRequest(ctx, 0, "", "", false, event.PresenceOnline)
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Rooms.Invite) != 0 {
				t.Fatalf("%s was sent a notice: %v", c.UserID, resp.Rooms.Invite)
			}
		}
	})
}
