package clientapi_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// memberEvent reads a user's current m.room.member event as c sees it.
func memberEvent(t *testing.T, c *mautrix.Client, roomID id.RoomID, userID id.UserID) *event.Event {
	t.Helper()
	ev, err := c.FullStateEvent(context.Background(), roomID, event.StateMember, userID.String())
	if err != nil {
		t.Fatalf("%s's member event: %v", userID, err)
	}
	return ev
}

// TestJoinAgainIsNoOp: joining a room one is in, with the same content,
// answers the room ID and sends no new member event (Synapse's
// update_membership_locked); a join whose body changes the content does.
func TestJoinAgainIsNoOp(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw")
		bob := s.Register("bob", "pw")
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		roomID := created.RoomID
		if _, err := bob.JoinRoomByID(ctx, roomID); err != nil {
			t.Fatal(err)
		}
		first := memberEvent(t, alice, roomID, bob.UserID)
		for _, join := range []func() (*mautrix.RespJoinRoom, error){
			func() (*mautrix.RespJoinRoom, error) { return bob.JoinRoomByID(ctx, roomID) },
			func() (*mautrix.RespJoinRoom, error) { return bob.JoinRoom(ctx, roomID.String(), nil) },
		} {
			resp, err := join()
			if err != nil || resp.RoomID != roomID {
				t.Fatalf("joining again: %+v, %v", resp, err)
			}
		}
		if again := memberEvent(t, alice, roomID, bob.UserID); again.ID != first.ID {
			t.Fatalf("a repeated join sent a new member event %s (was %s)", again.ID, first.ID)
		}
		// A join with a reason changes the content: a new event.
		if _, err := bob.JoinRoom(ctx, roomID.String(), &mautrix.ReqJoinRoom{Reason: "back again"}); err != nil {
			t.Fatal(err)
		}
		changed := memberEvent(t, alice, roomID, bob.UserID)
		if changed.ID == first.ID || changed.Content.Raw["reason"] != "back again" {
			t.Fatalf("join with a reason: %s %v", changed.ID, changed.Content.Raw)
		}
		// The same again is a no-op once more.
		if _, err := bob.JoinRoom(ctx, roomID.String(), &mautrix.ReqJoinRoom{Reason: "back again"}); err != nil {
			t.Fatal(err)
		}
		if again := memberEvent(t, alice, roomID, bob.UserID); again.ID != changed.ID {
			t.Fatalf("a repeated join with the same reason sent %s (was %s)", again.ID, changed.ID)
		}
	})
}

// TestMembershipBodyFieldsInContent: the fields of a /join, /invite,
// /kick and /ban body go into the member event's content, reason
// included; user_id and the keys only the server sets do not.
func TestMembershipBodyFieldsInContent(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw")
		bob := s.Register("bob", "pw")
		carol := s.Register("carol", "pw")
		dave := s.Register("dave", "pw")
		if err := bob.SetDisplayName(ctx, "Bob Global"); err != nil {
			t.Fatal(err)
		}
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		roomID := created.RoomID
		base := s.URL + "/_matrix/client/v3"
		post := func(c *mautrix.Client, path string, body any) testserver.Response {
			return testserver.Send(t, nil, http.MethodPost, base+path, c.AccessToken, body)
		}

		// /join: a per-room displayname, a custom field and a reason; the
		// membership and join_authorised_via_users_server are the server's.
		r := post(bob, "/join/"+url.PathEscape(roomID.String()), map[string]any{
			"reason": "hello", "displayname": "Bob Here", "org.example.tag": "x",
			"membership": "leave", "join_authorised_via_users_server": alice.UserID,
		})
		wireOK(t, "join with fields", r)
		c := memberEvent(t, alice, roomID, bob.UserID).Content.Raw
		if c["membership"] != "join" || c["reason"] != "hello" || c["displayname"] != "Bob Here" || c["org.example.tag"] != "x" {
			t.Fatalf("join content: %v", c)
		}
		if _, has := c["join_authorised_via_users_server"]; has {
			t.Fatalf("a client set join_authorised_via_users_server: %v", c)
		}
		// Without a displayname in the body, the global one.
		wireOK(t, "rejoin", post(bob, "/rooms/"+url.PathEscape(roomID.String())+"/join", map[string]any{}))
		if c := memberEvent(t, alice, roomID, bob.UserID).Content.Raw; c["displayname"] != "Bob Global" || c["reason"] != nil || c["org.example.tag"] != nil {
			t.Fatalf("join without fields: %v", c)
		}

		// /invite, /kick, /ban: the same, without user_id.
		wireOK(t, "invite", post(alice, "/rooms/"+url.PathEscape(roomID.String())+"/invite", map[string]any{
			"user_id": carol.UserID, "reason": "join us", "org.example.note": "welcome"}))
		c = memberEvent(t, alice, roomID, carol.UserID).Content.Raw
		if c["membership"] != "invite" || c["reason"] != "join us" || c["org.example.note"] != "welcome" || c["user_id"] != nil {
			t.Fatalf("invite content: %v", c)
		}
		wireOK(t, "kick", post(alice, "/rooms/"+url.PathEscape(roomID.String())+"/kick", map[string]any{
			"user_id": bob.UserID, "reason": "spam", "org.example.case": 42}))
		c = memberEvent(t, alice, roomID, bob.UserID).Content.Raw
		if c["membership"] != "leave" || c["reason"] != "spam" || c["org.example.case"] != float64(42) || c["user_id"] != nil {
			t.Fatalf("kick content: %v", c)
		}
		if _, err := alice.BanUser(ctx, roomID, &mautrix.ReqBanUser{UserID: dave.UserID, Reason: "abuse", MSC4293RedactEvents: true}); err != nil {
			t.Fatal(err)
		}
		c = memberEvent(t, alice, roomID, dave.UserID).Content.Raw
		if c["membership"] != "ban" || c["reason"] != "abuse" || c["org.matrix.msc4293.redact_events"] != true {
			t.Fatalf("ban content: %v", c)
		}
		// Through mautrix: the reason of a kick and of a leave.
		if _, err := alice.InviteUser(ctx, roomID, &mautrix.ReqInviteUser{UserID: bob.UserID}); err != nil {
			t.Fatal(err)
		}
		if _, err := bob.LeaveRoom(ctx, roomID, &mautrix.ReqLeave{Reason: "not now"}); err != nil {
			t.Fatal(err)
		}
		if c := memberEvent(t, alice, roomID, bob.UserID).Content.Raw; c["membership"] != "leave" || c["reason"] != "not now" {
			t.Fatalf("leave content: %v", c)
		}

		// A reason or per-room profile that is not a string is malformed.
		for _, path := range []string{"/join/" + url.PathEscape(roomID.String()), "/rooms/" + url.PathEscape(roomID.String()) + "/kick"} {
			for _, field := range []string{"reason", "displayname", "avatar_url"} {
				wireErr(t, "numeric "+field+" "+path, post(alice, path, map[string]any{"user_id": carol.UserID, field: 5}),
					http.StatusBadRequest, "M_BAD_JSON")
			}
		}
	})
}

// TestForgetRoom: a forgotten room's history is closed to its former
// member (403, before the parameters are looked at), and the room shows
// once in the next incremental sync's leave section even when it was
// forgotten before that sync, then never again; a left room in an
// initial sync with timeline.limit 0 has no events.
func TestForgetRoom(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw")
		bob := s.Register("bob", "pw")
		carol := s.Register("carol", "pw")
		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		roomID := created.RoomID
		for _, c := range []*mautrix.Client{bob, carol} {
			if _, err := c.JoinRoomByID(ctx, roomID); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := alice.SendText(ctx, roomID, "before the leave"); err != nil {
			t.Fatal(err)
		}
		first, err := bob.SyncRequest(ctx, 0, "", "", false, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bob.LeaveRoom(ctx, roomID); err != nil {
			t.Fatal(err)
		}
		// A former member still reads up to their leave.
		if _, err := bob.Messages(ctx, roomID, "", "", mautrix.DirectionBackward, nil, 10); err != nil {
			t.Fatalf("messages after leaving: %v", err)
		}
		if _, err := bob.ForgetRoom(ctx, roomID); err != nil {
			t.Fatal(err)
		}
		_, err = bob.Messages(ctx, roomID, "", "", mautrix.DirectionBackward, nil, 10)
		testserver.WantHTTPError(t, "messages of a forgotten room", err, http.StatusForbidden, "M_FORBIDDEN")
		r := testserver.Send(t, nil, http.MethodGet, s.URL+"/_matrix/client/v3/rooms/"+url.PathEscape(roomID.String())+"/messages?dir=sideways&limit=x", bob.AccessToken, nil)
		wireErr(t, "bad parameters on a forgotten room", r, http.StatusForbidden, "M_FORBIDDEN")

		next, err := bob.SyncRequest(ctx, 0, first.NextBatch, "", false, "")
		if err != nil {
			t.Fatal(err)
		}
		if left, ok := next.Rooms.Leave[roomID]; !ok || len(left.Timeline.Events) == 0 {
			t.Fatalf("the leave of a room forgotten before the sync is not in it: %+v", next.Rooms.Leave)
		}
		later, err := bob.SyncRequest(ctx, 0, next.NextBatch, "", false, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := later.Rooms.Leave[roomID]; ok {
			t.Fatalf("a forgotten room shows in leave a second time")
		}

		// carol left without forgetting: an initial sync with
		// include_leave and timeline.limit 0 lists the room with no events.
		if _, err := carol.LeaveRoom(ctx, roomID); err != nil {
			t.Fatal(err)
		}
		resp, err := carol.SyncRequest(ctx, 0, "", `{"room":{"include_leave":true,"timeline":{"limit":0}}}`, false, "")
		if err != nil {
			t.Fatal(err)
		}
		left, ok := resp.Rooms.Leave[roomID]
		if !ok {
			t.Fatalf("the left room is not in carol's initial sync: %+v", resp.Rooms.Leave)
		}
		if len(left.Timeline.Events) != 0 {
			t.Fatalf("timeline.limit 0 gave %d events", len(left.Timeline.Events))
		}
	})
}
