package reputation_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestReputationUserFilterListings: a room that alice's own filter lists
// (the server subscribes to nothing) leaves her room directory (GET and
// POST /publicRooms), the space hierarchy and the room's summary, and
// not bob's; removing the rule lists it to her again.
func TestReputationUserFilterListings(t *testing.T) {
	testserver.EachEngine(t, enfConfig, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		admin := s.RegisterAdmin("admin", "password1234")
		owner := s.Register("owner", "password1234")
		alice, bob := s.Register("alice", "password1234"), s.Register("bob", "password1234")
		feed := enfFeed(t, admin)
		created, err := owner.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Visibility: "public", Name: "Listed room"})
		if err != nil {
			t.Fatal(err)
		}
		room := created.RoomID
		space, err := owner.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Space",
			CreationContent: map[string]any{"type": "m.space"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := owner.SendStateEvent(ctx, space.RoomID, event.StateSpaceChild, room.String(),
			map[string]any{"via": []string{s.Config.ServerName}}); err != nil {
			t.Fatal(err)
		}
		inChunk := func(list []any) bool {
			for _, c := range list {
				if m, _ := c.(map[string]any); m["room_id"] == room.String() {
					return true
				}
			}
			return false
		}
		inDirectory := func(c *mautrix.Client, method string) bool {
			var body any
			if method == http.MethodPost {
				body = map[string]any{}
			}
			status, resp := s.Do(t, method, "/_matrix/client/v3/publicRooms", c.AccessToken, body)
			testserver.WantStatus(t, "publicRooms", status, resp, http.StatusOK)
			chunk, _ := resp["chunk"].([]any)
			return inChunk(chunk)
		}
		inHierarchy := func(c *mautrix.Client) bool {
			status, body := s.Do(t, http.MethodGet, "/_matrix/client/v1/rooms/"+url.PathEscape(space.RoomID.String())+"/hierarchy", c.AccessToken, nil)
			testserver.WantStatus(t, "hierarchy", status, body, http.StatusOK)
			rooms, _ := body["rooms"].([]any)
			return inChunk(rooms)
		}
		summary := func(c *mautrix.Client) int {
			status, _ := s.Do(t, http.MethodGet, "/_matrix/client/v1/room_summary/"+url.PathEscape(room.String()), c.AccessToken, nil)
			return status
		}
		visible := func(c *mautrix.Client) [4]bool {
			return [4]bool{inDirectory(c, http.MethodGet), inDirectory(c, http.MethodPost), inHierarchy(c), summary(c) == http.StatusOK}
		}
		all, none := [4]bool{true, true, true, true}, [4]bool{}
		if v := visible(alice); v != all {
			t.Fatalf("before any rule alice sees the room as %v (directory GET, POST, hierarchy, summary): the checks below could not fail", v)
		}

		userSubscribe(t, alice, feed)
		userWaitFollowed(t, s, alice, 0)
		enfRule(t, admin, feed, "room", "r1", room.String(), "m.ban", "not for me")
		userWaitFollowed(t, s, alice, 1)
		if v := visible(alice); v != none {
			t.Errorf("alice's filter lists the room, yet she sees it as %v (directory GET, POST, hierarchy, summary)", v)
		}
		if v := visible(bob); v != all {
			t.Errorf("bob has no filter, yet sees the room as %v", v)
		}
		if st := summary(owner); st != http.StatusOK {
			t.Errorf("the server lists nothing: the owner's summary is %d", st)
		}

		enfRule(t, admin, feed, "room", "r1", "", "", "")
		eventually(t, "alice sees the room again once the rule is removed", func() bool { return visible(alice) == all })
	})
}
