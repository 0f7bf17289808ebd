package clientapi_test

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testserver"
)

type dirResp struct {
	Limited bool `json:"limited"`
	Results []struct {
		UserID      id.UserID `json:"user_id"`
		DisplayName string    `json:"display_name"`
		AvatarURL   string    `json:"avatar_url"`
	} `json:"results"`
}

func searchDirectory(t *testing.T, cli *mautrix.Client, body map[string]any) dirResp {
	t.Helper()
	var resp dirResp
	if _, err := cli.MakeRequest(context.Background(), http.MethodPost, cli.BuildClientURL("v3", "user_directory", "search"), body, &resp); err != nil {
		t.Fatalf("user_directory/search %v: %v", body, err)
	}
	return resp
}

func dirIDs(r dirResp) []id.UserID {
	var out []id.UserID
	for _, u := range r.Results {
		out = append(out, u.UserID)
	}
	slices.Sort(out)
	return out
}

// TestUserDirectory checks whom the directory finds: users sharing a room
// with the searcher and users in public rooms, not others; matching on
// display name and user ID words, case-insensitively and by prefix; the
// limit and limited.
func TestUserDirectory(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw")
		bob := s.Register("bob", "pw")     // shares a private room with alice
		carol := s.Register("carol", "pw") // in a public room
		dave := s.Register("dave", "pw")   // in a private room without alice
		s.Register("loner", "pw")          // in no room
		for cli, name := range map[*mautrix.Client]string{bob: "Robert Tester", carol: "Caroline Tester", dave: "David Tester"} {
			if err := cli.SetDisplayName(ctx, name); err != nil {
				t.Fatal(err)
			}
		}
		private, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{bob.UserID}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bob.JoinRoomByID(ctx, private.RoomID); err != nil {
			t.Fatal(err)
		}
		if _, err := carol.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"}); err != nil {
			t.Fatal(err)
		}
		if _, err := dave.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"}); err != nil {
			t.Fatal(err)
		}

		got := searchDirectory(t, alice, map[string]any{"search_term": "tester"})
		if want := []id.UserID{bob.UserID, carol.UserID}; !slices.Equal(dirIDs(got), want) || got.Limited {
			t.Fatalf("tester: %v limited %v, want %v", dirIDs(got), got.Limited, want)
		}
		// The one sharing a room ranks first, with the profile's name.
		if got.Results[0].UserID != bob.UserID || got.Results[0].DisplayName != "Robert Tester" {
			t.Fatalf("first result: %+v", got.Results[0])
		}
		if got := searchDirectory(t, alice, map[string]any{"search_term": "ROB"}); !slices.Equal(dirIDs(got), []id.UserID{bob.UserID}) {
			t.Fatalf("display name prefix: %v", dirIDs(got))
		}
		if got := searchDirectory(t, alice, map[string]any{"search_term": "@caro"}); !slices.Equal(dirIDs(got), []id.UserID{carol.UserID}) {
			t.Fatalf("user ID prefix: %v", dirIDs(got))
		}
		if got := searchDirectory(t, alice, map[string]any{"search_term": "bert"}); len(got.Results) != 0 {
			t.Fatalf("infix matched: %v", dirIDs(got))
		}
		for _, term := range []string{"dave", "loner"} {
			if got := searchDirectory(t, alice, map[string]any{"search_term": term}); len(got.Results) != 0 {
				t.Fatalf("%s found: %v", term, dirIDs(got))
			}
		}
		got = searchDirectory(t, alice, map[string]any{"search_term": "tester", "limit": 1})
		if len(got.Results) != 1 || !got.Limited {
			t.Fatalf("limit 1: %v limited %v", dirIDs(got), got.Limited)
		}
	})
}

// TestUserDirectorySearchAllUsers checks user_directory.search_all_users:
// every local user is found, whatever rooms they are in.
func TestUserDirectorySearchAllUsers(t *testing.T) {
	testserver.EachEngine(t, func(c *config.Config) { c.UserDirectory.SearchAllUsers = true }, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw")
		loner := s.Register("loner", "pw")
		if err := loner.SetDisplayName(context.Background(), "Lonely Heart"); err != nil {
			t.Fatal(err)
		}
		got := searchDirectory(t, alice, map[string]any{"search_term": "heart"})
		if !slices.Equal(dirIDs(got), []id.UserID{loner.UserID}) || got.Results[0].DisplayName != "Lonely Heart" {
			t.Fatalf("search_all_users: %+v", got)
		}
	})
}

// TestUserDirectoryFullUserID: a search for a full user ID finds that
// user once, even when they are in several rooms the searcher can see
// (shared and public) and their display name holds the same words.
func TestUserDirectoryFullUserID(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw")
		carol := s.Register("carol", "pw")
		s.Register("carolyn", "pw")
		if err := carol.SetDisplayName(ctx, "carol hs1 test"); err != nil {
			t.Fatal(err)
		}
		for _, preset := range []string{"public_chat", "public_chat", "private_chat"} {
			r, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: preset, Invite: []id.UserID{carol.UserID}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := carol.JoinRoomByID(ctx, r.RoomID); err != nil {
				t.Fatal(err)
			}
		}
		got := searchDirectory(t, alice, map[string]any{"search_term": carol.UserID.String()})
		if ids := dirIDs(got); !slices.Equal(ids, []id.UserID{carol.UserID}) {
			t.Fatalf("search for %s: %v, want it once", carol.UserID, ids)
		}
	})
}
