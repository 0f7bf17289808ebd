package admin_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testserver"
)

const admV2Users = "/_synapse/admin/v2/users"

// uPath is the v1 or v2 path of a user's sub-resource.
func uPath(base, userID, rest string) string {
	return base + "/users/" + url.PathEscape(userID) + rest
}

// putUser creates or changes a user through PUT /v2/users/{userId}.
func putUser(t *testing.T, s *testserver.Server, admin, localpart string, body map[string]any, want int) map[string]any {
	t.Helper()
	status, resp := s.Do(t, "PUT", admV2Users+"/"+url.PathEscape(s.UserID(localpart)), admin, body)
	testserver.WantStatus(t, "PUT user "+localpart, status, resp, want)
	return resp
}

func login(t *testing.T, s *testserver.Server, user, password string) (int, map[string]any) {
	t.Helper()
	return s.Do(t, "POST", "/_matrix/client/v3/login", "", map[string]any{
		"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": user}, "password": password,
	})
}

func names(t *testing.T, body map[string]any) []string {
	t.Helper()
	users, ok := body["users"].([]any)
	if !ok {
		t.Fatalf("no users list: %v", body)
	}
	var out []string
	for _, u := range users {
		out = append(out, u.(map[string]any)["name"].(string))
	}
	return out
}

// TestAdminUserCreateModify covers PUT and GET /_synapse/admin/v2/users/{userId}.
func TestAdminUserCreateModify(t *testing.T) {
	testserver.EachEngine(t, withSecret, func(t *testing.T, s *testserver.Server) {
		admin := s.RegisterAdmin("root", "root password").AccessToken

		created := putUser(t, s, admin, "carol", map[string]any{"password": "carol pw 1", "displayname": "Carol C",
			"admin": false, "user_type": "bot", "threepids": []any{map[string]any{"medium": "email", "address": "c@example.org"}}}, http.StatusCreated)
		if created["name"] != s.UserID("carol") || created["displayname"] != "Carol C" || created["admin"] != false ||
			created["user_type"] != "bot" || created["deactivated"] != false || created["locked"] != false || created["erased"] != false {
			t.Fatalf("created: %v", created)
		}
		// The single user's creation_ts is in seconds, as in Synapse.
		if ts, _ := created["creation_ts"].(float64); ts < 1e9 || ts > 1e11 {
			t.Fatalf("creation_ts %v is not in seconds", created["creation_ts"])
		}
		status, body := login(t, s, "carol", "carol pw 1")
		testserver.WantStatus(t, "carol logs in with the password the admin set", status, body, http.StatusOK)
		carol, _ := body["access_token"].(string)

		// Modify: name, avatar, admin flag, user type cleared, password
		// without logging devices out.
		changed := putUser(t, s, admin, "carol", map[string]any{"displayname": "Carol D", "avatar_url": "mxc://hs1.test/abc",
			"admin": true, "user_type": nil, "password": "carol pw 2", "logout_devices": false}, http.StatusOK)
		if changed["displayname"] != "Carol D" || changed["avatar_url"] != "mxc://hs1.test/abc" || changed["admin"] != true || changed["user_type"] != nil {
			t.Fatalf("changed: %v", changed)
		}
		status, body = s.Do(t, "GET", "/_matrix/client/v3/account/whoami", carol, nil)
		testserver.WantStatus(t, "carol's session survives logout_devices=false", status, body, http.StatusOK)
		status, body = login(t, s, "carol", "carol pw 1")
		testserver.WantError(t, "old password", status, body, http.StatusForbidden, "M_FORBIDDEN")
		status, body = login(t, s, "carol", "carol pw 2")
		testserver.WantStatus(t, "new password", status, body, http.StatusOK)
		status, body = s.Do(t, "GET", admV2Users, carol, nil)
		testserver.WantStatus(t, "carol is an admin now", status, body, http.StatusOK)

		// Password again, devices logged out (the default).
		putUser(t, s, admin, "carol", map[string]any{"password": "carol pw 3"}, http.StatusOK)
		status, body = s.Do(t, "GET", "/_matrix/client/v3/account/whoami", carol, nil)
		testserver.WantError(t, "carol's session after a reset", status, body, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")

		// Locked.
		got := putUser(t, s, admin, "carol", map[string]any{"locked": true}, http.StatusOK)
		if got["locked"] != true {
			t.Fatalf("locked: %v", got)
		}
		status, body = login(t, s, "carol", "carol pw 3")
		testserver.WantError(t, "locked login", status, body, http.StatusUnauthorized, "M_USER_LOCKED")
		putUser(t, s, admin, "carol", map[string]any{"locked": false}, http.StatusOK)

		// Deactivate, then reactivate, which needs a password.
		got = putUser(t, s, admin, "carol", map[string]any{"deactivated": true}, http.StatusOK)
		if got["deactivated"] != true {
			t.Fatalf("deactivated: %v", got)
		}
		status, body = login(t, s, "carol", "carol pw 3")
		testserver.WantStatus(t, "deactivated login", status, body, http.StatusForbidden)
		status, body = s.Do(t, "PUT", admV2Users+"/"+url.PathEscape(s.UserID("carol")), admin, map[string]any{"deactivated": false})
		testserver.WantError(t, "reactivation without password", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		got = putUser(t, s, admin, "carol", map[string]any{"deactivated": false, "password": "carol pw 4"}, http.StatusOK)
		if got["deactivated"] != false {
			t.Fatalf("reactivated: %v", got)
		}
		status, body = login(t, s, "carol", "carol pw 4")
		testserver.WantStatus(t, "reactivated login", status, body, http.StatusOK)

		// GET.
		status, body = s.Do(t, "GET", admV2Users+"/"+url.PathEscape(s.UserID("carol")), admin, nil)
		testserver.WantStatus(t, "GET carol", status, body, http.StatusOK)
		for _, k := range []string{"name", "displayname", "avatar_url", "threepids", "external_ids", "is_guest", "admin", "deactivated",
			"erased", "shadow_banned", "creation_ts", "appservice_id", "user_type", "locked", "suspended", "last_seen_ts"} {
			if _, ok := body[k]; !ok {
				t.Fatalf("GET carol lacks %s: %v", k, body)
			}
		}
		if body["last_seen_ts"] == nil {
			t.Fatalf("carol logged in but has no last_seen_ts: %v", body)
		}

		// Errors.
		for _, c := range []struct {
			what, path string
			body       any
			status     int
			code       string
		}{
			{"unknown user", admV2Users + "/" + url.PathEscape(s.UserID("nobody")), nil, http.StatusNotFound, "M_NOT_FOUND"},
			{"remote user", admV2Users + "/" + url.PathEscape("@x:elsewhere.test"), nil, http.StatusBadRequest, "M_INVALID_PARAM"},
			{"not a user ID", admV2Users + "/nope", nil, http.StatusBadRequest, "M_INVALID_PARAM"},
		} {
			status, body := s.Do(t, "GET", c.path, admin, c.body)
			testserver.WantError(t, c.what, status, body, c.status, c.code)
		}
		carolPath := admV2Users + "/" + url.PathEscape(s.UserID("carol"))
		for _, c := range []struct {
			what string
			body any
			code string
		}{
			{"admin not a boolean", map[string]any{"admin": "yes"}, "M_INVALID_PARAM"},
			{"deactivated not a boolean", map[string]any{"deactivated": 1}, "M_INVALID_PARAM"},
			{"locked not a boolean", map[string]any{"locked": "true"}, "M_INVALID_PARAM"},
			{"password not a string", map[string]any{"password": 5}, "M_INVALID_PARAM"},
			{"unknown user type", map[string]any{"user_type": "wizard"}, "M_INVALID_PARAM"},
			{"displayname not a string", map[string]any{"displayname": 5}, "M_INVALID_PARAM"},
			{"threepids not a list", map[string]any{"threepids": "x"}, "M_INVALID_PARAM"},
			{"not JSON", "{", "M_NOT_JSON"},
			{"not an object", "[]", "M_BAD_JSON"},
		} {
			status, body := s.Do(t, "PUT", carolPath, admin, c.body)
			testserver.WantError(t, c.what, status, body, http.StatusBadRequest, c.code)
		}
		status, body = s.Do(t, "PUT", admV2Users+"/"+url.PathEscape(s.UserID("root")), admin, map[string]any{"admin": false})
		testserver.WantError(t, "self-demotion", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		status, body = s.Do(t, "PUT", admV2Users+"/"+url.PathEscape(s.UserID("Bad Name")), admin, map[string]any{})
		testserver.WantError(t, "invalid localpart", status, body, http.StatusBadRequest, "M_INVALID_USERNAME")
	})
}

// TestAdminUserList covers GET /_synapse/admin/v2/users and v3/users:
// pagination, total, next_token, ordering and filters.
func TestAdminUserList(t *testing.T) {
	testserver.EachEngine(t, func(c *config.Config) { withSecret(c); c.Registration.AllowGuests = true }, func(t *testing.T, s *testserver.Server) {
		admin := s.RegisterAdmin("root", "root password").AccessToken
		for _, u := range []struct{ lp, name string }{{"dave", "Zed"}, {"erin", "Yan"}, {"frank", "Xavier 100%"}, {"gina", "Wanda"}} {
			putUser(t, s, admin, u.lp, map[string]any{"password": "pw", "displayname": u.name}, http.StatusCreated)
		}
		putUser(t, s, admin, "root", map[string]any{"displayname": "Root"}, http.StatusOK)
		putUser(t, s, admin, "gone", map[string]any{"password": "pw", "deactivated": true}, http.StatusCreated)
		putUser(t, s, admin, "shut", map[string]any{"password": "pw", "locked": true}, http.StatusCreated)
		status, body := s.Do(t, "POST", "/_matrix/client/v3/register?kind=guest", "", map[string]any{})
		testserver.WantStatus(t, "guest", status, body, http.StatusOK)
		guest, _ := body["user_id"].(string)

		active := []string{s.UserID("dave"), s.UserID("erin"), s.UserID("frank"), s.UserID("gina"), s.UserID("root")}
		all := append(slices.Clone(active), guest)
		slices.Sort(all)

		// Pages of 2 by name: total, next_token until the end.
		var got []string
		from := ""
		for page := 0; ; page++ {
			q := "?limit=2"
			if from != "" {
				q += "&from=" + from
			}
			status, body := s.Do(t, "GET", admV2Users+q, admin, nil)
			testserver.WantStatus(t, "page", status, body, http.StatusOK)
			if body["total"] != float64(len(all)) {
				t.Fatalf("total %v, want %d: %v", body["total"], len(all), body)
			}
			got = append(got, names(t, body)...)
			next, has := body["next_token"].(string)
			if !has {
				if _, present := body["next_token"]; present {
					t.Fatalf("next_token is not a string: %v", body)
				}
				break
			}
			from = next
			if page > 5 {
				t.Fatal("pagination does not end")
			}
		}
		if !slices.Equal(got, all) {
			t.Fatalf("paged users %v, want %v", got, all)
		}
		entry := func(body map[string]any, i int) map[string]any { return body["users"].([]any)[i].(map[string]any) }
		status, body = s.Do(t, "GET", admV2Users+"?user_id=dave", admin, nil)
		testserver.WantStatus(t, "user_id filter", status, body, http.StatusOK)
		if e := entry(body, 0); !slices.Equal(names(t, body), []string{s.UserID("dave")}) || e["displayname"] != "Zed" ||
			e["admin"] != false || e["is_guest"] != false || e["deactivated"] != false {
			t.Fatalf("user_id=dave: %v", body)
		} else if ts, _ := e["creation_ts"].(float64); ts < 1e12 {
			t.Fatalf("list creation_ts %v is not in milliseconds", e["creation_ts"])
		}

		for _, c := range []struct {
			query string
			want  []string
		}{
			{"?order_by=displayname&guests=false", []string{s.UserID("root"), s.UserID("gina"), s.UserID("frank"), s.UserID("erin"), s.UserID("dave")}},
			{"?order_by=displayname&dir=b&guests=false", []string{s.UserID("dave"), s.UserID("erin"), s.UserID("frank"), s.UserID("gina"), s.UserID("root")}},
			{"?dir=b&guests=false", []string{s.UserID("root"), s.UserID("gina"), s.UserID("frank"), s.UserID("erin"), s.UserID("dave")}},
			{"?name=yA", []string{s.UserID("erin")}},                        // display name, any case
			{"?name=FRA", []string{s.UserID("frank")}},                      // user ID, any case
			{"?name=" + url.QueryEscape("0%"), []string{s.UserID("frank")}}, // % is literal
			{"?name=" + url.QueryEscape("%"), []string{s.UserID("frank")}},
			{"?admins=true", []string{s.UserID("root")}},
			{"?admins=false&guests=false", []string{s.UserID("dave"), s.UserID("erin"), s.UserID("frank"), s.UserID("gina")}},
			{"?guests=false", active},
			{"?deactivated=true&guests=false", []string{s.UserID("dave"), s.UserID("erin"), s.UserID("frank"), s.UserID("gina"), s.UserID("gone"), s.UserID("root")}},
			{"?locked=true&guests=false", []string{s.UserID("dave"), s.UserID("erin"), s.UserID("frank"), s.UserID("gina"), s.UserID("root"), s.UserID("shut")}},
			{"?user_id=nobody", nil},
		} {
			status, body := s.Do(t, "GET", admV2Users+c.query, admin, nil)
			testserver.WantStatus(t, c.query, status, body, http.StatusOK)
			if got := names(t, body); !slices.Equal(got, c.want) || body["total"] != float64(len(c.want)) {
				t.Fatalf("v2 %s: %v (total %v), want %v", c.query, got, body["total"], c.want)
			}
		}
		// v3: deactivated=true is only the deactivated; absent is everyone.
		for _, c := range []struct {
			query string
			want  []string
		}{
			{"?deactivated=true", []string{s.UserID("gone")}},
			{"?deactivated=false&guests=false", active},
			{"?guests=false", []string{s.UserID("dave"), s.UserID("erin"), s.UserID("frank"), s.UserID("gina"), s.UserID("gone"), s.UserID("root")}},
		} {
			status, body := s.Do(t, "GET", "/_synapse/admin/v3/users"+c.query, admin, nil)
			testserver.WantStatus(t, c.query, status, body, http.StatusOK)
			if got := names(t, body); !slices.Equal(got, c.want) {
				t.Fatalf("v3 %s: %v, want %v", c.query, got, c.want)
			}
		}
		for _, q := range []string{"?from=-1", "?limit=x", "?order_by=password", "?dir=up", "?guests=yes", "?admins=1", "?name=%00"} {
			status, body := s.Do(t, "GET", admV2Users+q, admin, nil)
			testserver.WantError(t, q, status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		}
	})
}

// TestAdminUserNonAdminRefused: every users route answers a non-admin
// 403 M_FORBIDDEN, and changes nothing.
func TestAdminUserNonAdminRefused(t *testing.T) {
	testserver.EachEngine(t, withSecret, func(t *testing.T, s *testserver.Server) {
		admin := s.RegisterAdmin("root", "root password").AccessToken
		putUser(t, s, admin, "victim", map[string]any{"password": "victim pw"}, http.StatusCreated)
		bob := admUserToken(t, s, "bob", false)
		v := s.UserID("victim")
		v1, v2 := admBase, "/_synapse/admin/v2"
		routes := []struct {
			method, path string
			body         any
		}{
			{"GET", v2 + "/users", nil},
			{"GET", "/_synapse/admin/v3/users", nil},
			{"GET", uPath(v2, v, ""), nil},
			{"PUT", uPath(v2, v, ""), map[string]any{"admin": true}},
			{"PUT", uPath(v2, s.UserID("newbie"), ""), map[string]any{"password": "x"}},
			{"GET", uPath(v2, v, "/devices"), nil},
			{"POST", uPath(v2, v, "/delete_devices"), map[string]any{"devices": []string{}}},
			{"GET", uPath(v2, v, "/devices/D"), nil},
			{"PUT", uPath(v2, v, "/devices/D"), map[string]any{"display_name": "x"}},
			{"DELETE", uPath(v2, v, "/devices/D"), nil},
			{"GET", uPath(v1, v, "/joined_rooms"), nil},
			{"GET", uPath(v1, v, "/pushers"), nil},
			{"GET", uPath(v1, v, "/memberships"), nil},
			{"GET", v1 + "/experimental_features/" + url.PathEscape(v), nil},
			{"PUT", v1 + "/experimental_features/" + url.PathEscape(v), map[string]any{"features": map[string]bool{}}},
			{"GET", uPath(v1, v, "/accountdata"), nil},
			{"GET", uPath(v1, v, "/admin"), nil},
			{"PUT", uPath(v1, s.UserID("bob"), "/admin"), map[string]any{"admin": true}},
			{"POST", uPath(v1, v, "/shadow_ban"), nil},
			{"DELETE", uPath(v1, v, "/shadow_ban"), nil},
			{"GET", uPath(v1, v, "/override_ratelimit"), nil},
			{"POST", uPath(v1, s.UserID("bob"), "/override_ratelimit"), map[string]any{}},
			{"DELETE", uPath(v1, v, "/override_ratelimit"), nil},
			{"GET", uPath(v1, v, "/media"), nil},
			{"DELETE", uPath(v1, v, "/media"), nil},
			{"POST", v1 + "/reset_password/" + url.PathEscape(v), map[string]any{"new_password": "mine now"}},
			{"POST", v1 + "/deactivate/" + url.PathEscape(v), map[string]any{}},
			{"GET", v1 + "/username_available?username=x", nil},
			{"GET", v1 + "/whois/" + url.PathEscape(v), nil},
			{"GET", "/_matrix/client/v3/admin/whois/" + url.PathEscape(v), nil},
		}
		for _, r := range routes {
			status, body := s.Do(t, r.method, r.path, bob, r.body)
			testserver.WantError(t, "bob: "+r.method+" "+r.path, status, body, http.StatusForbidden, "M_FORBIDDEN")
		}
		// Nothing happened: the victim still logs in with their password,
		// bob is no admin, newbie does not exist.
		status, body := login(t, s, "victim", "victim pw")
		testserver.WantStatus(t, "victim login", status, body, http.StatusOK)
		status, body = s.Do(t, "GET", uPath(v1, s.UserID("bob"), "/admin"), admin, nil)
		testserver.WantStatus(t, "bob admin?", status, body, http.StatusOK)
		if body["admin"] != false {
			t.Fatalf("bob became admin: %v", body)
		}
		status, body = s.Do(t, "GET", uPath(v2, s.UserID("newbie"), ""), admin, nil)
		testserver.WantError(t, "newbie", status, body, http.StatusNotFound, "M_NOT_FOUND")
		// The same routes work for the admin (no 403: the table is of
		// real routes, not of paths that refuse everyone).
		for _, r := range routes {
			if r.method != "GET" {
				continue
			}
			status, body := s.Do(t, r.method, r.path, admin, r.body)
			if status == http.StatusForbidden {
				t.Fatalf("admin refused: %s %s: %v", r.method, r.path, body)
			}
		}
		// A user may whois themselves, as in Synapse.
		status, body = s.Do(t, "GET", v1+"/whois/"+url.PathEscape(s.UserID("bob")), bob, nil)
		testserver.WantStatus(t, "bob whois bob", status, body, http.StatusOK)
	})
}

func adminUserPath(s *testserver.Server, lp, rest string) string {
	return fmt.Sprintf("%s/users/%s%s", admBase, url.PathEscape(s.UserID(lp)), rest)
}
