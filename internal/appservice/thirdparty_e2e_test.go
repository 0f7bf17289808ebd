package appservice_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	mas "maunium.net/go/mautrix/appservice"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testdb"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// newNetworkBridge is a mautrix-go appservice for a chat network: id,
// users @{prefix}_*, aliases #{prefix}_*, the protocols its registration
// lists. Its third-party handlers are added to its router by the test,
// as a bridge adds them.
func newNetworkBridge(t *testing.T, server, asID, prefix string, protocols []string) *bridge {
	t.Helper()
	port := freePort(t)
	esc := strings.ReplaceAll(server, ".", `\.`)
	reg := &mas.Registration{
		ID: asID, URL: fmt.Sprintf("http://127.0.0.1:%d", port),
		AppToken: "as_" + asID + "_" + t.Name(), ServerToken: "hs_" + asID + "_" + t.Name(), SenderLocalpart: asID + "bot",
		Protocols: protocols,
		Namespaces: mas.Namespaces{
			UserIDs:     mas.NamespaceList{{Regex: "@" + prefix + "_.*:" + esc, Exclusive: true}},
			RoomAliases: mas.NamespaceList{{Regex: "#" + prefix + "_.*:" + esc, Exclusive: true}},
		},
	}
	path := filepath.Join(t.TempDir(), asID+".yaml")
	if err := reg.Save(path); err != nil {
		t.Fatal(err)
	}
	as := mas.Create()
	as.Registration = reg
	as.HomeserverDomain = server
	as.Host = mas.HostConfig{Hostname: "127.0.0.1", Port: port}
	b := &bridge{t: t, as: as, path: path, queried: make(chan string, 16)}
	as.QueryHandler = bridgeQueries{b}
	t.Cleanup(b.stop)
	return b
}

// handle answers GET path on the bridge with fn's JSON (or, for a
// []byte, those bytes as they are), after checking the hs_token.
func (b *bridge) handle(path string, fn func(r *http.Request) any) {
	b.as.Router.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+b.as.Registration.ServerToken {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		switch v := fn(r).(type) {
		case []byte:
			_, _ = w.Write(v)
		default:
			_ = json.NewEncoder(w).Encode(v)
		}
	})
}

// getJSON makes an authenticated GET on the client API and decodes the
// answer into out, returning the status.
func getJSON(t *testing.T, s *testserver.Server, path, token string, out any) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("GET %s: %v: %q", path, err, raw)
		}
	}
	return resp.StatusCode
}

type tpResult struct {
	UserID   string            `json:"userid"`
	Alias    string            `json:"alias"`
	Protocol string            `json:"protocol"`
	Fields   map[string]string `json:"fields"`
}

// TestAppServiceThirdParty: the client API's third-party lookups reach
// the services that list the protocol; two services' answers merge (the
// first's metadata, both's instances, each with its instance_id), the
// client's fields are forwarded without its access token, reverse
// lookups go to the service whose namespace holds the ID, and a
// service's hostile answers (not JSON, wrong shapes, megabytes, invalid
// UTF-8) are dropped instead of reaching the client.
func TestAppServiceThirdParty(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		irc := newNetworkBridge(t, "hs1.test", "irc", "irc", []string{"irc"})
		other := newNetworkBridge(t, "hs1.test", "other", "oth", []string{"irc", "slack", "junk"})
		leaked := make(chan string, 16)
		irc.handle("/_matrix/app/v1/thirdparty/protocol/{protocol}", func(*http.Request) any {
			return map[string]any{
				"user_fields": []string{"network", "nickname"}, "location_fields": []string{"network", "channel"},
				"icon": "mxc://example.org/irc", "field_types": map[string]any{"network": map[string]string{"regexp": "[a-z]+", "placeholder": "libera"}},
				"instances": []any{
					map[string]any{"desc": "Libera", "network_id": "libera", "fields": map[string]string{"network": "libera"}},
					"not an instance", map[string]any{"desc": "no network id"},
				},
			}
		})
		irc.handle("/_matrix/app/v1/thirdparty/user/{protocol}", func(r *http.Request) any {
			if r.URL.Query().Has("access_token") {
				leaked <- r.URL.RawQuery
			}
			nick := r.URL.Query().Get("nickname")
			return []any{
				map[string]any{"userid": "@irc_" + nick + ":hs1.test", "protocol": "irc", "fields": map[string]string{"nickname": nick}},
				map[string]any{"userid": "@irc_nofields:hs1.test", "protocol": "irc"},
				42, nil,
			}
		})
		irc.handle("/_matrix/app/v1/thirdparty/user", func(r *http.Request) any {
			return []any{map[string]any{"userid": r.URL.Query().Get("userid"), "protocol": "irc", "fields": map[string]string{"nickname": "reverse"}}}
		})
		irc.handle("/_matrix/app/v1/thirdparty/location", func(r *http.Request) any {
			return []any{map[string]any{"alias": r.URL.Query().Get("alias"), "protocol": "irc", "fields": map[string]string{"channel": "#matrix"}}}
		})
		other.handle("/_matrix/app/v1/thirdparty/protocol/{protocol}", func(r *http.Request) any {
			switch r.PathValue("protocol") {
			case "irc":
				return map[string]any{"user_fields": []string{"ignored"}, "instances": []any{
					map[string]any{"desc": "OFTC \xff", "network_id": "oftc", "fields": map[string]any{"n": 1}, "instance_id": "forged|id"}}}
			case "slack":
				return []byte(`{"instances": "not a list"}`)
			default: // megabytes of a valid-looking answer
				return []byte(`{"instances": [` + strings.Repeat(`{"desc":"x","network_id":"y","fields":{}},`, 60000) + `{}]}`)
			}
		})
		other.handle("/_matrix/app/v1/thirdparty/user/{protocol}", func(*http.Request) any {
			return []byte("[{\"userid\": \"@oth_a:hs1.test\", \"protocol\": \"irc\", \"fields\": {\"nickname\": \"a\\u0000\"}}, ")
		})
		other.handle("/_matrix/app/v1/thirdparty/location/{protocol}", func(*http.Request) any {
			return []any{map[string]any{"alias": "#oth_x:hs1.test", "protocol": "irc", "fields": map[string]string{"channel": "x"}}}
		})
		s := testserver.Start(t, dbURL, func(c *config.Config) { c.AppServices.Files = []string{irc.path, other.path} })
		irc.start(s.URL)
		other.start(s.URL)
		alice := s.Register("alice", "password")
		token := alice.AccessToken

		var protocols map[string]struct {
			UserFields []string `json:"user_fields"`
			Icon       string   `json:"icon"`
			Instances  []struct {
				Desc       string         `json:"desc"`
				NetworkID  string         `json:"network_id"`
				InstanceID string         `json:"instance_id"`
				Fields     map[string]any `json:"fields"`
			} `json:"instances"`
		}
		if st := getJSON(t, s, "/_matrix/client/v3/thirdparty/protocols", token, &protocols); st != http.StatusOK {
			t.Fatalf("protocols: status %d", st)
		}
		if len(protocols) != 1 {
			t.Fatalf("protocols %v: want irc alone (slack's and junk's answers are invalid or too large)", protocols)
		}
		p := protocols["irc"]
		if !slices.Equal(p.UserFields, []string{"network", "nickname"}) || p.Icon != "mxc://example.org/irc" {
			t.Fatalf("irc metadata %+v: want the first service's", p)
		}
		var ids []string
		for _, in := range p.Instances {
			ids = append(ids, in.InstanceID)
		}
		if !slices.Equal(ids, []string{"irc|libera", "other|oftc"}) {
			t.Fatalf("instance ids %q, want both services' valid instances", ids)
		}
		if p.Instances[1].Desc != "OFTC \uFFFD" {
			t.Fatalf("invalid UTF-8 reached the client: %q", p.Instances[1].Desc)
		}

		var one map[string]any
		if st := getJSON(t, s, "/_matrix/client/v3/thirdparty/protocol/irc", token, &one); st != http.StatusOK || one["instances"] == nil {
			t.Fatalf("protocol irc: status %d %v", st, one)
		}
		if st := getJSON(t, s, "/_matrix/client/v3/thirdparty/protocol/slack", token, &one); st != http.StatusNotFound {
			t.Fatalf("protocol slack (invalid answer): status %d, want 404", st)
		}
		if st := getJSON(t, s, "/_matrix/client/v3/thirdparty/protocols", "", &one); st != http.StatusUnauthorized {
			t.Fatalf("protocols without a token: status %d, want 401", st)
		}

		var users []tpResult
		st := getJSON(t, s, "/_matrix/client/v3/thirdparty/user/irc?nickname=bob&access_token="+url.QueryEscape(token), "", &users)
		if st != http.StatusOK || len(users) != 1 || users[0].UserID != "@irc_bob:hs1.test" || users[0].Fields["nickname"] != "bob" {
			t.Fatalf("user lookup: status %d %+v, want irc's one valid result (other's answer is truncated JSON)", st, users)
		}
		select {
		case q := <-leaked:
			t.Fatalf("the client's access token was forwarded to the service: %s", q)
		default:
		}
		var locations []tpResult
		if st := getJSON(t, s, "/_matrix/client/v3/thirdparty/location/irc?channel=x", token, &locations); st != http.StatusOK ||
			len(locations) != 1 || locations[0].Alias != "#oth_x:hs1.test" {
			t.Fatalf("location lookup: status %d %+v", st, locations)
		}
		if st := getJSON(t, s, "/_matrix/client/v3/thirdparty/user/nosuch", token, &users); st != http.StatusOK || len(users) != 0 {
			t.Fatalf("lookup of a protocol nobody serves: status %d %+v, want an empty list", st, users)
		}
		if st := getJSON(t, s, "/_matrix/client/v3/thirdparty/user?userid="+url.QueryEscape("@irc_carol:hs1.test"), token, &users); st != http.StatusOK ||
			len(users) != 1 || users[0].UserID != "@irc_carol:hs1.test" || users[0].Fields["nickname"] != "reverse" {
			t.Fatalf("reverse user lookup: status %d %+v", st, users)
		}
		if st := getJSON(t, s, "/_matrix/client/v3/thirdparty/user?userid="+url.QueryEscape("@alice:hs1.test"), token, &users); st != http.StatusOK || len(users) != 0 {
			t.Fatalf("reverse lookup outside every namespace: status %d %+v", st, users)
		}
		if st := getJSON(t, s, "/_matrix/client/v3/thirdparty/location?alias="+url.QueryEscape("#irc_chan:hs1.test"), token, &locations); st != http.StatusOK ||
			len(locations) != 1 || locations[0].Alias != "#irc_chan:hs1.test" {
			t.Fatalf("reverse location lookup: status %d %+v", st, locations)
		}
		if st := getJSON(t, s, "/_matrix/client/v3/thirdparty/location", token, &locations); st != http.StatusBadRequest {
			t.Fatalf("reverse location lookup without alias: status %d, want 400", st)
		}
	})
}

// TestAppServiceNetworkDirectory: a service publishes rooms in its
// networks' directories (PUT /directory/list/appservice/{networkId}/{roomId},
// its as_token only); /publicRooms lists them with that network's
// third_party_instance_id or include_all_networks and not otherwise, as
// Synapse does.
func TestAppServiceNetworkDirectory(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		irc := newNetworkBridge(t, "hs1.test", "irc", "irc", []string{"irc"})
		s := testserver.Start(t, dbURL, func(c *config.Config) { c.AppServices.Files = []string{irc.path} })
		irc.start(s.URL)
		alice := s.Register("alice", "password")
		local, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Visibility: "public", Name: "local"})
		if err != nil {
			t.Fatal(err)
		}
		bridged, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "bridged"})
		if err != nil {
			t.Fatal(err)
		}
		asToken := irc.as.Registration.AppToken
		path := "/_matrix/client/v3/directory/list/appservice/libera/" + url.PathEscape(string(bridged.RoomID))
		status, body := s.Do(t, http.MethodPut, path, alice.AccessToken, map[string]string{"visibility": "public"})
		testserver.WantError(t, "a user editing a service's network directory", status, body, http.StatusForbidden, "M_FORBIDDEN")
		status, body = s.Do(t, http.MethodPut, "/_matrix/client/v3/directory/list/appservice/libera/!nosuch:hs1.test", asToken, map[string]string{"visibility": "public"})
		testserver.WantError(t, "an unknown room", status, body, http.StatusNotFound, "M_NOT_FOUND")
		status, body = s.Do(t, http.MethodPut, path, asToken, map[string]string{"visibility": "secret"})
		testserver.WantError(t, "a bad visibility", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		status, body = s.Do(t, http.MethodPut, path, asToken, map[string]string{"visibility": "public"})
		testserver.WantStatus(t, "the service publishing the room", status, body, http.StatusOK)

		list := func(req *mautrix.ReqPublicRooms) []string {
			t.Helper()
			resp, err := alice.PublicRooms(ctx, req)
			if err != nil {
				t.Fatalf("publicRooms %+v: %v", req, err)
			}
			var ids []string
			for _, r := range resp.Chunk {
				ids = append(ids, string(r.RoomID))
			}
			slices.Sort(ids)
			return ids
		}
		both := []string{string(local.RoomID), string(bridged.RoomID)}
		slices.Sort(both)
		for _, c := range []struct {
			what string
			req  *mautrix.ReqPublicRooms
			want []string
		}{
			{"the server's own directory", &mautrix.ReqPublicRooms{}, []string{string(local.RoomID)}},
			{"all networks", &mautrix.ReqPublicRooms{IncludeAllNetworks: true}, both},
			{"the service's network", &mautrix.ReqPublicRooms{ThirdPartyInstanceID: "irc|libera"}, []string{string(bridged.RoomID)}},
			{"another network", &mautrix.ReqPublicRooms{ThirdPartyInstanceID: "irc|oftc"}, nil},
		} {
			if got := list(c.req); !slices.Equal(got, c.want) {
				t.Fatalf("%s: %q, want %q", c.what, got, c.want)
			}
		}
		_, err = alice.PublicRooms(ctx, &mautrix.ReqPublicRooms{ThirdPartyInstanceID: "no-separator"})
		testserver.WantHTTPError(t, "an instance id without |", err, http.StatusBadRequest, "M_INVALID_PARAM")
		status, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/publicRooms", alice.AccessToken,
			map[string]any{"third_party_instance_id": "irc|libera", "filter": map[string]string{"generic_search_term": "bridged"}})
		if status != http.StatusOK || len(body["chunk"].([]any)) != 1 {
			t.Fatalf("POST publicRooms of the network: %d %v", status, body)
		}

		status, body = s.Do(t, http.MethodDelete, path, asToken, nil)
		testserver.WantStatus(t, "the service withdrawing the room", status, body, http.StatusOK)
		if got := list(&mautrix.ReqPublicRooms{ThirdPartyInstanceID: "irc|libera"}); len(got) != 0 {
			t.Fatalf("after DELETE: %q", got)
		}
		status, body = s.Do(t, http.MethodPut, path, asToken, map[string]string{"visibility": "public"})
		testserver.WantStatus(t, "republishing", status, body, http.StatusOK)
		status, body = s.Do(t, http.MethodPut, path, asToken, map[string]string{"visibility": "private"})
		testserver.WantStatus(t, "private", status, body, http.StatusOK)
		if got := list(&mautrix.ReqPublicRooms{IncludeAllNetworks: true}); !slices.Equal(got, []string{string(local.RoomID)}) {
			t.Fatalf("after private: %q", got)
		}
	})
}
