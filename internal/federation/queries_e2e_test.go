package federation_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/signing"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestFederationQueries asks hs1 about its users, aliases, published
// rooms and spaces as hs2 does on its users' behalf.
func TestFederationQueries(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, nil, func(t *testing.T, net *testserver.Network) {
		hs1, hs2 := net.Servers[0], net.Servers[1]
		alice := hs1.Register("alice", "password")
		get := func(path string) (int, map[string]any) {
			t.Helper()
			return net.SignedRequest(t, hs2, hs1, http.MethodGet, "/_matrix/federation/v1"+path, nil)
		}
		t.Run("profile", func(t *testing.T) { testQueryProfile(t, alice, get) })
		t.Run("directory", func(t *testing.T) { testQueryDirectory(t, hs1, hs2, alice, get) })
		t.Run("publicRooms", func(t *testing.T) { testFederationPublicRooms(t, net, hs1, hs2, alice, get) })
		t.Run("hierarchy", func(t *testing.T) { testFederationHierarchy(t, alice, get) })
		t.Run("unsigned", func(t *testing.T) {
			_, forged, _ := ed25519.GenerateKey(nil)
			status, body := net.RequestSignedWith(t, "hs2.test", signing.Key{ID: serverKey(t, hs2).ID, Private: forged}, hs1,
				http.MethodGet, "/_matrix/federation/v1/query/profile?user_id="+url.QueryEscape("@alice:hs1.test"), nil)
			testserver.WantError(t, "forged profile query", status, body, http.StatusUnauthorized, "M_UNAUTHORIZED")
		})
	})
}

func testQueryProfile(t *testing.T, alice *mautrix.Client, get func(string) (int, map[string]any)) {
	ctx := context.Background()
	if err := alice.SetDisplayName(ctx, "Alice"); err != nil {
		t.Fatal(err)
	}
	q := "/query/profile?user_id=" + url.QueryEscape("@alice:hs1.test")
	status, body := get(q)
	testserver.WantStatus(t, "profile", status, body, http.StatusOK)
	if body["displayname"] != "Alice" {
		t.Fatalf("profile: %v", body)
	}
	status, body = get(q + "&field=displayname")
	testserver.WantStatus(t, "profile displayname", status, body, http.StatusOK)
	if len(body) != 1 || body["displayname"] != "Alice" {
		t.Fatalf("profile displayname: %v", body)
	}
	status, body = get(q + "&field=avatar_url")
	testserver.WantError(t, "profile field not set", status, body, http.StatusNotFound, "M_NOT_FOUND")
	status, body = get("/query/profile?user_id=" + url.QueryEscape("@nobody:hs1.test"))
	testserver.WantError(t, "unknown user", status, body, http.StatusNotFound, "M_NOT_FOUND")
	status, body = get("/query/profile?user_id=" + url.QueryEscape("@bob:hs2.test"))
	testserver.WantStatus(t, "remote user", status, body, http.StatusBadRequest)
	status, body = get("/query/profile")
	testserver.WantError(t, "no user_id", status, body, http.StatusBadRequest, "M_MISSING_PARAM")
}

func testQueryDirectory(t *testing.T, hs1, hs2 *testserver.Server, alice *mautrix.Client, get func(string) (int, map[string]any)) {
	ctx := context.Background()
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", RoomAliasName: "lobby"})
	if err != nil {
		t.Fatal(err)
	}
	remoteJoin(t, hs2, hs1, room.RoomID.String(), "bob")
	status, body := get("/query/directory?room_alias=" + url.QueryEscape("#lobby:hs1.test"))
	testserver.WantStatus(t, "directory", status, body, http.StatusOK)
	if body["room_id"] != room.RoomID.String() || !slices.Equal(stringList(body["servers"]), []string{"hs1.test", "hs2.test"}) {
		t.Fatalf("directory: %v", body)
	}
	status, body = get("/query/directory?room_alias=" + url.QueryEscape("#nowhere:hs1.test"))
	testserver.WantError(t, "unknown alias", status, body, http.StatusNotFound, "M_NOT_FOUND")
	status, body = get("/query/directory?room_alias=" + url.QueryEscape("#lobby:hs2.test"))
	testserver.WantStatus(t, "remote alias", status, body, http.StatusBadRequest)
}

func testFederationPublicRooms(t *testing.T, net *testserver.Network, hs1, hs2 *testserver.Server, alice *mautrix.Client, get func(string) (int, map[string]any)) {
	ctx := context.Background()
	for _, name := range []string{"Garden", "Kitchen"} {
		if _, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Visibility: "public", Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	// The same list as the client API's.
	status, fed := get("/publicRooms")
	testserver.WantStatus(t, "publicRooms", status, fed, http.StatusOK)
	status, client := hs1.Do(t, http.MethodGet, "/_matrix/client/v3/publicRooms", "", nil)
	testserver.WantStatus(t, "client publicRooms", status, client, http.StatusOK)
	fedJSON, _ := json.Marshal(fed)
	clientJSON, _ := json.Marshal(client)
	if string(fedJSON) != string(clientJSON) {
		t.Fatalf("publicRooms over federation %s, to clients %s", fedJSON, clientJSON)
	}
	if chunk, _ := fed["chunk"].([]any); len(chunk) != 2 {
		t.Fatalf("publicRooms: %s", fedJSON)
	}
	status, page := get("/publicRooms?limit=1&include_all_networks=true")
	testserver.WantStatus(t, "publicRooms page", status, page, http.StatusOK)
	if chunk, _ := page["chunk"].([]any); len(chunk) != 1 || page["next_batch"] == nil {
		t.Fatalf("publicRooms page: %v", page)
	}
	status, found := net.SignedRequest(t, hs2, hs1, http.MethodPost, "/_matrix/federation/v1/publicRooms",
		map[string]any{"filter": map[string]any{"generic_search_term": "kitch"}})
	testserver.WantStatus(t, "publicRooms search", status, found, http.StatusOK)
	if chunk, _ := found["chunk"].([]any); len(chunk) != 1 || chunk[0].(map[string]any)["name"] != "Kitchen" {
		t.Fatalf("publicRooms search: %v", found)
	}
	status, body := net.SignedRequest(t, hs2, hs1, http.MethodPost, "/_matrix/federation/v1/publicRooms",
		map[string]any{"include_all_networks": true, "third_party_instance_id": "irc"})
	testserver.WantError(t, "both network options", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
}

func testFederationHierarchy(t *testing.T, alice *mautrix.Client, get func(string) (int, map[string]any)) {
	ctx := context.Background()
	create := func(preset string, space bool) id.RoomID {
		t.Helper()
		req := &mautrix.ReqCreateRoom{Preset: preset}
		if space {
			req.CreationContent = map[string]any{"type": "m.space"}
		}
		r, err := alice.CreateRoom(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return r.RoomID
	}
	space, public, private := create("public_chat", true), create("public_chat", false), create("private_chat", false)
	for _, child := range []id.RoomID{public, private} {
		if _, err := alice.SendStateEvent(ctx, space, event.StateSpaceChild, child.String(), map[string]any{"via": []string{"hs1.test"}}); err != nil {
			t.Fatal(err)
		}
	}
	status, body := get("/hierarchy/" + space.String())
	testserver.WantStatus(t, "hierarchy", status, body, http.StatusOK)
	room, _ := body["room"].(map[string]any)
	if room["room_id"] != space.String() || room["room_type"] != "m.space" {
		t.Fatalf("hierarchy room: %v", room)
	}
	if state, _ := room["children_state"].([]any); len(state) != 2 {
		t.Fatalf("hierarchy children_state: %v", room["children_state"])
	}
	children, _ := body["children"].([]any)
	if len(children) != 1 || children[0].(map[string]any)["room_id"] != public.String() {
		t.Fatalf("hierarchy children: %v", children)
	}
	if got := stringList(body["inaccessible_children"]); !slices.Equal(got, []string{private.String()}) {
		t.Fatalf("hierarchy inaccessible_children: %v", got)
	}
	status, body = get("/hierarchy/" + space.String() + "?suggested_only=true")
	testserver.WantStatus(t, "hierarchy suggested only", status, body, http.StatusOK)
	if children, _ := body["children"].([]any); len(children) != 0 {
		t.Fatalf("hierarchy suggested only: %v", body)
	}
	status, body = get("/hierarchy/" + private.String())
	testserver.WantError(t, "hierarchy of a private room", status, body, http.StatusNotFound, "M_NOT_FOUND")
	status, body = get("/hierarchy/!unknown:hs1.test")
	testserver.WantError(t, "hierarchy of an unknown room", status, body, http.StatusNotFound, "M_NOT_FOUND")
}
