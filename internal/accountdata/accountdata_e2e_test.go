package accountdata_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/myelin-chat/myelin/internal/accountdata"
	"github.com/myelin-chat/myelin/internal/testserver"
)

func path(c *mautrix.Client, rest string) string {
	return "/_matrix/client/v3/user/" + url.PathEscape(string(c.UserID)) + rest
}

func TestAccountDataRoundTrips(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice, bob := s.Register("alice", "pw-alice-1"), s.Register("bob", "pw-bob-1")
		room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{})
		if err != nil {
			t.Fatal(err)
		}
		stream := s.Engine().Stream()
		before := stream.Current()

		if err := alice.SetAccountData(ctx, "org.example.config", map[string]any{"a": 1}); err != nil {
			t.Fatal(err)
		}
		if err := alice.SetAccountData(ctx, "org.example.config", map[string]any{"a": 2}); err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := alice.GetAccountData(ctx, "org.example.config", &got); err != nil || got["a"] != float64(2) {
			t.Fatalf("global get: %v %v", got, err)
		}
		if err := alice.SetRoomAccountData(ctx, room.RoomID, "org.example.room", map[string]any{"r": true}); err != nil {
			t.Fatal(err)
		}
		got = nil
		if err := alice.GetRoomAccountData(ctx, room.RoomID, "org.example.room", &got); err != nil || got["r"] != true {
			t.Fatalf("room get: %v %v", got, err)
		}
		direct := map[string][]string{string(bob.UserID): {string(room.RoomID)}}
		if err := alice.SetAccountData(ctx, "m.direct", direct); err != nil {
			t.Fatal(err)
		}

		// Errors: unknown types, other users, managed types, bad bodies.
		err = alice.GetAccountData(ctx, "org.example.none", &got)
		testserver.WantHTTPError(t, "unknown type", err, http.StatusNotFound, "M_NOT_FOUND")
		err = alice.GetRoomAccountData(ctx, room.RoomID, "org.example.config", &got)
		testserver.WantHTTPError(t, "global type in a room", err, http.StatusNotFound, "M_NOT_FOUND")
		status, body := s.Do(t, http.MethodGet, path(alice, "/account_data/org.example.config"), bob.AccessToken, nil)
		testserver.WantError(t, "other user's data", status, body, http.StatusForbidden, "M_FORBIDDEN")
		status, body = s.Do(t, http.MethodPut, path(alice, "/account_data/org.example.config"), bob.AccessToken, map[string]any{})
		testserver.WantError(t, "write other user's data", status, body, http.StatusForbidden, "M_FORBIDDEN")
		status, body = s.Do(t, http.MethodPut, path(alice, "/account_data/m.push_rules"), alice.AccessToken, map[string]any{})
		testserver.WantError(t, "m.push_rules", status, body, http.StatusMethodNotAllowed, "M_BAD_JSON")
		status, body = s.Do(t, http.MethodPut, path(alice, "/rooms/"+url.PathEscape(string(room.RoomID))+"/account_data/m.fully_read"), alice.AccessToken, map[string]any{"event_id": "$x"})
		testserver.WantError(t, "m.fully_read", status, body, http.StatusMethodNotAllowed, "M_BAD_JSON")
		status, body = s.Do(t, http.MethodPut, path(alice, "/rooms/not-a-room/account_data/org.example.room"), alice.AccessToken, map[string]any{})
		testserver.WantError(t, "bad room ID", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		status, body = s.Do(t, http.MethodPut, path(alice, "/account_data/org.example.config"), alice.AccessToken, []int{1})
		testserver.WantError(t, "array body", status, body, http.StatusBadRequest, "M_BAD_JSON")

		// m.push_rules reads as the full ruleset.
		var rules map[string]any
		if err := alice.GetAccountData(ctx, "m.push_rules", &rules); err != nil || rules["global"] == nil {
			t.Fatalf("m.push_rules: %v %v", rules, err)
		}

		// What /sync gets: each type once, latest content, rooms apart.
		global, rooms, err := s.AccountData().Changes(ctx, string(alice.UserID), before, stream.Current())
		if err != nil {
			t.Fatal(err)
		}
		types := map[string]string{}
		for _, e := range global {
			types[e.Type] = string(e.Content)
		}
		if types["org.example.config"] != `{"a":2}` || types["m.direct"] == "" || len(global) != 2 {
			t.Fatalf("global changes: %v", types)
		}
		if len(rooms[string(room.RoomID)]) != 1 || rooms[string(room.RoomID)][0].Type != "org.example.room" {
			t.Fatalf("room changes: %v", rooms)
		}
		initial, _, err := s.AccountData().Changes(ctx, string(alice.UserID), 0, stream.Current())
		if err != nil {
			t.Fatal(err)
		}
		if !hasType(initial, "m.push_rules") {
			t.Fatalf("initial changes lack m.push_rules: %v", initial)
		}
		mid := stream.Current()
		if global, _, _ := s.AccountData().Changes(ctx, string(alice.UserID), mid, stream.Current()); len(global) != 0 {
			t.Fatalf("changes past the end: %v", global)
		}

		// The ignore list.
		if err := alice.SetAccountData(ctx, "m.ignored_user_list", map[string]any{"ignored_users": map[string]any{string(bob.UserID): map[string]any{}}}); err != nil {
			t.Fatal(err)
		}
		ignored, err := s.AccountData().IgnoredUsers(ctx, string(alice.UserID))
		if err != nil || !ignored[string(bob.UserID)] || len(ignored) != 1 {
			t.Fatalf("ignored: %v %v", ignored, err)
		}
		if err := alice.SetAccountData(ctx, "m.ignored_user_list", map[string]any{"ignored_users": map[string]any{}}); err != nil {
			t.Fatal(err)
		}
		if ignored, _ := s.AccountData().IgnoredUsers(ctx, string(alice.UserID)); len(ignored) != 0 {
			t.Fatalf("ignored after clearing: %v", ignored)
		}
		global, _, _ = s.AccountData().Changes(ctx, string(alice.UserID), mid, stream.Current())
		if len(global) != 1 || global[0].Type != "m.ignored_user_list" {
			t.Fatalf("changes after mid: %v", global)
		}
	})
}

func hasType(evs []accountdata.Event, typ string) bool {
	for _, e := range evs {
		if e.Type == typ {
			return true
		}
	}
	return false
}

func TestTags(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw-alice-1")
		room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{})
		if err != nil {
			t.Fatal(err)
		}
		tags, err := alice.GetTags(ctx, room.RoomID)
		if err != nil || len(tags.Tags) != 0 {
			t.Fatalf("no tags: %v %v", tags, err)
		}
		if err := alice.AddTag(ctx, room.RoomID, event.RoomTagFavourite, 0.25); err != nil {
			t.Fatal(err)
		}
		if err := alice.AddTagWithCustomData(ctx, room.RoomID, "u.work", map[string]any{"order": 0.5, "x": "y"}); err != nil {
			t.Fatal(err)
		}
		var raw struct {
			Tags map[string]map[string]any `json:"tags"`
		}
		if err := alice.GetTagsWithCustomData(ctx, room.RoomID, &raw); err != nil {
			t.Fatal(err)
		}
		if raw.Tags["m.favourite"]["order"] != 0.25 || raw.Tags["u.work"]["x"] != "y" || len(raw.Tags) != 2 {
			t.Fatalf("tags: %v", raw.Tags)
		}
		if err := alice.RemoveTag(ctx, room.RoomID, event.RoomTagFavourite); err != nil {
			t.Fatal(err)
		}
		if err := alice.RemoveTag(ctx, room.RoomID, "u.absent"); err != nil {
			t.Fatalf("removing an absent tag: %v", err)
		}
		// Tags are m.tag room account data.
		var content map[string]map[string]any
		if err := alice.GetRoomAccountData(ctx, room.RoomID, "m.tag", &content); err != nil {
			t.Fatal(err)
		}
		if _, ok := content["tags"]["u.work"]; !ok || len(content["tags"]) != 1 {
			t.Fatalf("m.tag: %v", content)
		}
		status, body := s.Do(t, http.MethodPut, path(alice, "/rooms/"+url.PathEscape(string(room.RoomID))+"/tags/u.bad"), alice.AccessToken, map[string]any{"order": "first"})
		testserver.WantError(t, "string order", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		other := s.Register("other", "pw-other-1")
		err = other.AddTag(ctx, room.RoomID, "u.x", 0) // their own tags on any room ID: allowed
		if err != nil {
			t.Fatal(err)
		}
		status, body = s.Do(t, http.MethodGet, path(alice, "/rooms/"+url.PathEscape(string(room.RoomID))+"/tags"), other.AccessToken, nil)
		testserver.WantError(t, "other's tags", status, body, http.StatusForbidden, "M_FORBIDDEN")
	})
}
