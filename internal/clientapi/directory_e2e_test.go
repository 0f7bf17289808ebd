package clientapi_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testserver"
)

const dirSecret = "directory-test-shared-secret"

func dirWithSecret(c *config.Config) { c.Registration.SharedSecret = dirSecret }

func dirCanonical(t *testing.T, cli *mautrix.Client, roomID id.RoomID) map[string]any {
	t.Helper()
	content := map[string]any{}
	if err := cli.StateEvent(context.Background(), roomID, event.StateCanonicalAlias, "", &content); err != nil {
		t.Fatalf("canonical alias of %s: %v", roomID, err)
	}
	return content
}

// TestDirectoryAliases covers PUT/GET/DELETE /directory/room/{roomAlias}
// and GET /rooms/{roomId}/aliases: validation, conflicts, who may create,
// list and delete aliases, and the canonical alias update on deletion.
func TestDirectoryAliases(t *testing.T) {
	testserver.EachEngine(t, dirWithSecret, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw")
		bob := s.Register("bob", "pw")
		carol := s.Register("carol", "pw")
		admin := s.RegisterAdmin("root", "admin pw")

		created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "Tea"})
		if err != nil {
			t.Fatal(err)
		}
		room := created.RoomID
		tea := id.RoomAlias("#tea:hs1.test")

		if _, err := alice.CreateAlias(ctx, tea, room); err != nil {
			t.Fatalf("create alias: %v", err)
		}
		_, err = alice.CreateAlias(ctx, tea, room)
		testserver.WantHTTPError(t, "existing alias", err, http.StatusConflict, "M_UNKNOWN")
		for _, bad := range []id.RoomAlias{"tea:hs1.test", "#tea", "#:hs1.test", "#te a:hs1.test"} {
			_, err = alice.CreateAlias(ctx, bad, room)
			testserver.WantHTTPError(t, "invalid alias "+string(bad), err, http.StatusBadRequest, "M_INVALID_PARAM")
		}
		_, err = alice.CreateAlias(ctx, "#tea:elsewhere.test", room)
		testserver.WantHTTPError(t, "remote alias", err, http.StatusBadRequest, "M_INVALID_PARAM")
		_, err = alice.CreateAlias(ctx, "#ghost:hs1.test", "!nowhere:hs1.test")
		testserver.WantHTTPError(t, "unknown room", err, http.StatusNotFound, "M_NOT_FOUND")
		_, err = bob.CreateAlias(ctx, "#bobs:hs1.test", room)
		testserver.WantHTTPError(t, "alias for a room bob is not in", err, http.StatusForbidden, "M_FORBIDDEN")
		status, body := s.Do(t, http.MethodPut, "/_matrix/client/v3/directory/room/"+url.PathEscape("#nobody:hs1.test"), alice.AccessToken, map[string]any{})
		if status != http.StatusBadRequest || body["errcode"] != "M_BAD_JSON" {
			t.Fatalf("PUT without room_id: %d %v", status, body)
		}

		// Anyone, even without an access token, resolves aliases.
		for _, cli := range []*mautrix.Client{alice, s.Client()} {
			res, err := cli.ResolveAlias(ctx, tea)
			if err != nil {
				t.Fatalf("resolve: %v", err)
			}
			if res.RoomID != room || len(res.Servers) != 1 || res.Servers[0] != "hs1.test" {
				t.Fatalf("resolve: %+v", res)
			}
		}
		_, err = alice.ResolveAlias(ctx, "#missing:hs1.test")
		testserver.WantHTTPError(t, "unknown alias", err, http.StatusNotFound, "M_NOT_FOUND")
		_, err = alice.ResolveAlias(ctx, "missing")
		testserver.WantHTTPError(t, "malformed alias", err, http.StatusBadRequest, "M_INVALID_PARAM")

		// Local aliases: members only, until the room is world-readable.
		list, err := alice.GetAliases(ctx, room)
		if err != nil || len(list.Aliases) != 1 || list.Aliases[0] != tea {
			t.Fatalf("aliases: %+v %v", list, err)
		}
		_, err = bob.GetAliases(ctx, room)
		testserver.WantHTTPError(t, "aliases for a non-member", err, http.StatusForbidden, "M_FORBIDDEN")
		if list, err := admin.GetAliases(ctx, room); err != nil || len(list.Aliases) != 1 {
			t.Fatalf("admin aliases: %+v %v", list, err)
		}
		if _, err := alice.SendStateEvent(ctx, room, event.StateHistoryVisibility, "", map[string]string{"history_visibility": "world_readable"}); err != nil {
			t.Fatal(err)
		}
		if list, err := bob.GetAliases(ctx, room); err != nil || len(list.Aliases) != 1 {
			t.Fatalf("aliases of a world-readable room: %+v %v", list, err)
		}

		// bob joins and makes an alias of his own; alice lists every alias
		// in the canonical alias event.
		if _, err := bob.JoinRoomByID(ctx, room); err != nil {
			t.Fatal(err)
		}
		if _, err := bob.CreateAlias(ctx, "#bobs:hs1.test", room); err != nil {
			t.Fatalf("bob's alias: %v", err)
		}
		if _, err := alice.CreateAlias(ctx, "#tea2:hs1.test", room); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.SendStateEvent(ctx, room, event.StateCanonicalAlias, "", map[string]any{
			"alias": tea, "alt_aliases": []string{"#tea2:hs1.test", "#bobs:hs1.test"},
		}); err != nil {
			t.Fatalf("canonical alias: %v", err)
		}

		// bob (power 0) may not delete alice's alias; carol, outside the
		// room, neither.
		_, err = bob.DeleteAlias(ctx, tea)
		testserver.WantHTTPError(t, "bob deletes alice's alias", err, http.StatusForbidden, "M_FORBIDDEN")
		_, err = carol.DeleteAlias(ctx, tea)
		testserver.WantHTTPError(t, "carol deletes alice's alias", err, http.StatusForbidden, "M_FORBIDDEN")
		_, err = bob.DeleteAlias(ctx, "#missing:hs1.test")
		testserver.WantHTTPError(t, "delete unknown alias", err, http.StatusNotFound, "M_NOT_FOUND")

		// bob deletes his own alias: allowed, though he cannot change the
		// canonical alias event, which keeps it.
		if _, err := bob.DeleteAlias(ctx, "#bobs:hs1.test"); err != nil {
			t.Fatalf("bob deletes his alias: %v", err)
		}
		if _, err := bob.ResolveAlias(ctx, "#bobs:hs1.test"); err == nil {
			t.Fatal("deleted alias still resolves")
		}
		if alt := dirCanonical(t, alice, room)["alt_aliases"].([]any); len(alt) != 2 {
			t.Fatalf("canonical alias changed by a user without power: %v", alt)
		}

		// alice (room admin) deletes the canonical alias: the event loses it.
		if _, err := alice.DeleteAlias(ctx, tea); err != nil {
			t.Fatalf("alice deletes her alias: %v", err)
		}
		content := dirCanonical(t, alice, room)
		if _, ok := content["alias"]; ok {
			t.Fatalf("canonical alias still set after deletion: %v", content)
		}
		if alt := content["alt_aliases"].([]any); len(alt) != 2 || alt[0] != "#tea2:hs1.test" {
			t.Fatalf("alt_aliases after deleting the main alias: %v", alt)
		}
		// Deleting an alt alias removes it from alt_aliases.
		if _, err := alice.DeleteAlias(ctx, "#tea2:hs1.test"); err != nil {
			t.Fatal(err)
		}
		if alt := dirCanonical(t, alice, room)["alt_aliases"].([]any); len(alt) != 1 || alt[0] != "#bobs:hs1.test" {
			t.Fatalf("alt_aliases after deleting an alt alias: %v", alt)
		}

		// A server admin deletes anyone's alias, in a room they are not in.
		if _, err := alice.CreateAlias(ctx, "#tea3:hs1.test", room); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.DeleteAlias(ctx, "#tea3:hs1.test"); err != nil {
			t.Fatalf("admin deletes an alias: %v", err)
		}
		if list, err := alice.GetAliases(ctx, room); err != nil || len(list.Aliases) != 0 {
			t.Fatalf("aliases after deletions: %+v %v", list, err)
		}
		// A server admin creates aliases without being in the room.
		if _, err := admin.CreateAlias(ctx, "#adm:hs1.test", room); err != nil {
			t.Fatalf("admin creates an alias: %v", err)
		}
	})
}

// dirPublicRooms posts a /publicRooms query.
func dirPublicRooms(t *testing.T, cli *mautrix.Client, query string, body map[string]any) *mautrix.RespPublicRooms {
	t.Helper()
	u := cli.BuildClientURL("v3", "publicRooms") + query
	var resp mautrix.RespPublicRooms
	if _, err := cli.MakeRequest(context.Background(), http.MethodPost, u, body, &resp); err != nil {
		t.Fatalf("POST /publicRooms%s %v: %v", query, body, err)
	}
	return &resp
}

func dirRoomIDs(chunk []*mautrix.PublicRoomInfo) []id.RoomID {
	out := make([]id.RoomID, len(chunk))
	for i, r := range chunk {
		out[i] = r.RoomID
	}
	return out
}

func dirSameIDs(got, want []id.RoomID) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

func dirVisibility(t *testing.T, cli *mautrix.Client, room id.RoomID) string {
	t.Helper()
	var resp struct {
		Visibility string `json:"visibility"`
	}
	if _, err := cli.MakeRequest(context.Background(), http.MethodGet, cli.BuildClientURL("v3", "directory", "list", "room", room), nil, &resp); err != nil {
		t.Fatalf("GET visibility of %s: %v", room, err)
	}
	return resp.Visibility
}

func dirSetVisibility(cli *mautrix.Client, room id.RoomID, visibility any) error {
	_, err := cli.MakeRequest(context.Background(), http.MethodPut, cli.BuildClientURL("v3", "directory", "list", "room", room),
		map[string]any{"visibility": visibility}, nil)
	return err
}

// TestDirectoryPublicRooms covers GET/PUT /directory/list/room/{roomId}
// and GET/POST /publicRooms: who may publish, which published rooms are
// listed, entry fields, ordering, paging, filters and the server
// parameter.
func TestDirectoryPublicRooms(t *testing.T) {
	testserver.EachEngine(t, dirWithSecret, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw")
		bob := s.Register("bob", "pw")
		carol := s.Register("carol", "pw")
		admin := s.RegisterAdmin("root", "admin pw")

		// Tea: public, three members, alias, name and topic.
		teaResp, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Visibility: "public", RoomAliasName: "tea", Name: "Tea Room", Topic: "Earl Grey only"})
		if err != nil {
			t.Fatal(err)
		}
		tea := teaResp.RoomID
		for _, cli := range []*mautrix.Client{bob, carol} {
			if _, err := cli.JoinRoomByID(ctx, tea); err != nil {
				t.Fatal(err)
			}
		}
		// Coffee: public, two members.
		coffeeResp, err := bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Visibility: "public", Name: "Coffee"})
		if err != nil {
			t.Fatal(err)
		}
		coffee := coffeeResp.RoomID
		if _, err := carol.JoinRoomByID(ctx, coffee); err != nil {
			t.Fatal(err)
		}
		// Garden: a public space, one member.
		gardenResp, err := carol.CreateRoom(ctx, &mautrix.ReqCreateRoom{Visibility: "public", Name: "Garden",
			CreationContent: map[string]any{"type": "m.space"}})
		if err != nil {
			t.Fatal(err)
		}
		garden := gardenResp.RoomID
		// Secret: private, unpublished.
		secretResp, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Name: "Secret"})
		if err != nil {
			t.Fatal(err)
		}
		secret := secretResp.RoomID

		if v := dirVisibility(t, s.Client(), tea); v != "public" {
			t.Fatalf("tea visibility %q", v)
		}
		if v := dirVisibility(t, alice, secret); v != "private" {
			t.Fatalf("secret visibility %q", v)
		}
		_, err = alice.MakeRequest(ctx, http.MethodGet, alice.BuildClientURL("v3", "directory", "list", "room", "!nowhere:hs1.test"), nil, nil)
		testserver.WantHTTPError(t, "visibility of an unknown room", err, http.StatusNotFound, "M_NOT_FOUND")
		testserver.WantHTTPError(t, "publish an unknown room", dirSetVisibility(alice, "!nowhere:hs1.test", "public"), http.StatusNotFound, "M_NOT_FOUND")
		testserver.WantHTTPError(t, "bad visibility", dirSetVisibility(alice, secret, "hidden"), http.StatusBadRequest, "M_INVALID_PARAM")
		testserver.WantHTTPError(t, "non-member publishes", dirSetVisibility(bob, secret, "public"), http.StatusForbidden, "M_FORBIDDEN")
		// A member without the canonical alias power level may not either.
		testserver.WantHTTPError(t, "member without power publishes", dirSetVisibility(carol, tea, "private"), http.StatusForbidden, "M_FORBIDDEN")

		list, err := alice.PublicRooms(ctx, &mautrix.ReqPublicRooms{})
		if err != nil {
			t.Fatal(err)
		}
		if want := []id.RoomID{tea, coffee, garden}; !dirSameIDs(dirRoomIDs(list.Chunk), want) {
			t.Fatalf("public rooms %v, want %v (largest first)", dirRoomIDs(list.Chunk), want)
		}
		if list.TotalRoomCountEstimate != 3 || list.NextBatch != "" || list.PrevBatch != "" {
			t.Fatalf("unpaged listing: %+v", list)
		}
		first := list.Chunk[0]
		if first.Name != "Tea Room" || first.Topic != "Earl Grey only" || first.CanonicalAlias != "#tea:hs1.test" ||
			first.NumJoinedMembers != 3 || first.JoinRule != "public" || first.WorldReadable || first.GuestCanJoin || first.RoomType != "" {
			t.Fatalf("tea entry: %+v", first)
		}
		if list.Chunk[2].RoomType != "m.space" || list.Chunk[2].NumJoinedMembers != 1 {
			t.Fatalf("garden entry: %+v", list.Chunk[2])
		}
		// The raw entry carries the required keys.
		status, body := s.Do(t, http.MethodGet, "/_matrix/client/v3/publicRooms", "", nil)
		if status != http.StatusOK {
			t.Fatalf("anonymous GET /publicRooms: %d %v", status, body)
		}
		entry := body["chunk"].([]any)[1].(map[string]any)
		for _, k := range []string{"room_id", "num_joined_members", "world_readable", "guest_can_join", "join_rule", "name"} {
			if _, ok := entry[k]; !ok {
				t.Fatalf("entry lacks %s: %v", k, entry)
			}
		}
		if _, ok := entry["topic"]; ok {
			t.Fatalf("coffee has no topic but the entry has one: %v", entry)
		}

		// Paging with limit 1, forwards then backwards.
		var seen []id.RoomID
		since := ""
		for page := 0; ; page++ {
			resp, err := alice.PublicRooms(ctx, &mautrix.ReqPublicRooms{Limit: 1, Since: since})
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Chunk) != 1 || resp.TotalRoomCountEstimate != 3 {
				t.Fatalf("page %d: %+v", page, resp)
			}
			if (page == 0) != (resp.PrevBatch == "") {
				t.Fatalf("page %d prev_batch %q", page, resp.PrevBatch)
			}
			seen = append(seen, resp.Chunk[0].RoomID)
			if page == 2 {
				if resp.NextBatch != "" {
					t.Fatalf("last page has next_batch")
				}
				back, err := alice.PublicRooms(ctx, &mautrix.ReqPublicRooms{Limit: 1, Since: resp.PrevBatch})
				if err != nil || len(back.Chunk) != 1 || back.Chunk[0].RoomID != coffee {
					t.Fatalf("prev_batch page: %+v %v", back, err)
				}
				break
			}
			if resp.NextBatch == "" {
				t.Fatalf("page %d lacks next_batch", page)
			}
			since = resp.NextBatch
		}
		if !dirSameIDs(seen, []id.RoomID{tea, coffee, garden}) {
			t.Fatalf("paged rooms %v", seen)
		}
		_, err = alice.PublicRooms(ctx, &mautrix.ReqPublicRooms{Since: "garbage"})
		testserver.WantHTTPError(t, "bad since token", err, http.StatusBadRequest, "M_INVALID_PARAM")

		// Filters: search term (case-insensitive, name/topic/alias), room types.
		for _, tc := range []struct {
			filter map[string]any
			want   []id.RoomID
		}{
			{map[string]any{"generic_search_term": "earl grey"}, []id.RoomID{tea}},
			{map[string]any{"generic_search_term": "#TEA:"}, []id.RoomID{tea}},
			{map[string]any{"generic_search_term": "coff"}, []id.RoomID{coffee}},
			{map[string]any{"generic_search_term": string(garden)}, []id.RoomID{garden}},
			{map[string]any{"generic_search_term": "nothing like this"}, []id.RoomID{}},
			{map[string]any{"room_types": []any{"m.space"}}, []id.RoomID{garden}},
			{map[string]any{"room_types": []any{nil}}, []id.RoomID{tea, coffee}},
			{map[string]any{"room_types": []any{nil, "m.space"}}, []id.RoomID{tea, coffee, garden}},
		} {
			resp := dirPublicRooms(t, alice, "", map[string]any{"filter": tc.filter})
			if !dirSameIDs(dirRoomIDs(resp.Chunk), tc.want) {
				t.Fatalf("filter %v: %v, want %v", tc.filter, dirRoomIDs(resp.Chunk), tc.want)
			}
		}
		resp := dirPublicRooms(t, alice, "", map[string]any{"limit": 1, "filter": map[string]any{"room_types": []any{nil}}})
		if len(resp.Chunk) != 1 || resp.Chunk[0].RoomID != tea || resp.NextBatch == "" {
			t.Fatalf("filtered page: %+v", resp)
		}
		resp = dirPublicRooms(t, alice, "", map[string]any{"limit": 1, "since": resp.NextBatch, "filter": map[string]any{"room_types": []any{nil}}})
		if len(resp.Chunk) != 1 || resp.Chunk[0].RoomID != coffee || resp.NextBatch != "" {
			t.Fatalf("second filtered page: %+v", resp)
		}
		status, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/publicRooms", "", map[string]any{})
		if status != http.StatusUnauthorized || body["errcode"] != "M_MISSING_TOKEN" {
			t.Fatalf("anonymous POST /publicRooms: %d %v", status, body)
		}

		// The server parameter: this server, another one (whose directory
		// is empty without federation), a malformed one.
		if resp := dirPublicRooms(t, alice, "?server=hs1.test", map[string]any{}); len(resp.Chunk) != 3 {
			t.Fatalf("server=hs1.test: %+v", resp)
		}
		if resp := dirPublicRooms(t, alice, "?server=elsewhere.test", map[string]any{}); len(resp.Chunk) != 0 {
			t.Fatalf("server=elsewhere.test: %+v", resp)
		}
		_, err = alice.PublicRooms(ctx, &mautrix.ReqPublicRooms{Server: "not a server!"})
		testserver.WantHTTPError(t, "malformed server", err, http.StatusBadRequest, "M_INVALID_PARAM")

		// Publishing an invite-only room that is not world-readable lists
		// nothing until it becomes joinable (Synapse's directory filter).
		if err := dirSetVisibility(alice, secret, "public"); err != nil {
			t.Fatalf("publish secret: %v", err)
		}
		if v := dirVisibility(t, alice, secret); v != "public" {
			t.Fatalf("secret visibility after publishing: %q", v)
		}
		if list, _ := alice.PublicRooms(ctx, &mautrix.ReqPublicRooms{}); len(list.Chunk) != 3 {
			t.Fatalf("invite-only room listed: %v", dirRoomIDs(list.Chunk))
		}
		if _, err := alice.SendStateEvent(ctx, secret, event.StateHistoryVisibility, "", map[string]string{"history_visibility": "world_readable"}); err != nil {
			t.Fatal(err)
		}
		list, _ = alice.PublicRooms(ctx, &mautrix.ReqPublicRooms{})
		if len(list.Chunk) != 4 || !dirSameIDs(dirRoomIDs(list.Chunk[:2]), []id.RoomID{tea, coffee}) {
			t.Fatalf("world-readable room not listed: %v", dirRoomIDs(list.Chunk))
		}
		// garden and secret have one member each: room ID order.
		last := list.Chunk[3]
		if list.Chunk[2].RoomID > last.RoomID {
			t.Fatalf("equal member counts not in room ID order: %v", dirRoomIDs(list.Chunk))
		}
		if last.RoomID != secret {
			last = list.Chunk[2]
		}
		if last.RoomID != secret || !last.WorldReadable || last.JoinRule != "invite" || last.NumJoinedMembers != 1 {
			t.Fatalf("secret entry: %+v", last)
		}

		// Unpublishing; a server admin may change any room's entry.
		if err := dirSetVisibility(alice, secret, "private"); err != nil {
			t.Fatal(err)
		}
		if err := dirSetVisibility(admin, coffee, "private"); err != nil {
			t.Fatalf("admin unpublishes: %v", err)
		}
		list, _ = alice.PublicRooms(ctx, &mautrix.ReqPublicRooms{})
		if !dirSameIDs(dirRoomIDs(list.Chunk), []id.RoomID{tea, garden}) {
			t.Fatalf("after unpublishing: %v", dirRoomIDs(list.Chunk))
		}
		// The visibility defaults to public when the body omits it.
		if _, err := bob.MakeRequest(ctx, http.MethodPut, bob.BuildClientURL("v3", "directory", "list", "room", coffee), map[string]any{}, nil); err != nil {
			t.Fatalf("publish with an empty body: %v", err)
		}
		if v := dirVisibility(t, bob, coffee); v != "public" {
			t.Fatalf("coffee visibility %q", v)
		}
	})
}
