package admin_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"maunium.net/go/mautrix"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testserver"
)

func modConfig(c *config.Config) { c.Registration.SharedSecret = admSecret }

// TestAdminSuspendLockEndpoints: spec v1.18's GET/PUT
// /_matrix/client/v1/admin/suspend|lock/{userId} (MSC4323) answer server
// admins only, before any lookup; refuse remote users (400
// M_INVALID_PARAM), unknown and deactivated ones (404), other admins and
// the caller's own account (403); read and flip the state; and the
// m.account_moderation capability is shown to admins alone.
func TestAdminSuspendLockEndpoints(t *testing.T) {
	testserver.EachEngine(t, modConfig, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		admin := s.RegisterAdmin("root", "pw-root")
		other := s.RegisterAdmin("root2", "pw-root2")
		alice := s.Register("alice", "pw-alice")
		gone := s.Register("gone", "pw-gone")
		if err := s.Accounts().Deactivate(ctx, "gone", false); err != nil {
			t.Fatal(err)
		}
		_ = gone
		aliceID := s.UserID("alice")
		for _, kind := range []struct{ path, field string }{{"suspend", "suspended"}, {"lock", "locked"}} {
			p := func(user string) string { return "/_matrix/client/v1/admin/" + kind.path + "/" + url.PathEscape(user) }
			body := map[string]any{kind.field: true}

			// A non-admin is refused before the user is looked up: the
			// same 403 for a user who exists and one who does not.
			for _, u := range []string{aliceID, "@nobody:hs1.test", "@x:elsewhere.test"} {
				st, b := s.Do(t, http.MethodGet, p(u), alice.AccessToken, nil)
				testserver.WantError(t, "GET by non-admin "+u, st, b, http.StatusForbidden, "M_FORBIDDEN")
				st, b = s.Do(t, http.MethodPut, p(u), alice.AccessToken, body)
				testserver.WantError(t, "PUT by non-admin "+u, st, b, http.StatusForbidden, "M_FORBIDDEN")
			}
			st, b := s.Do(t, http.MethodGet, p(aliceID), "", nil)
			testserver.WantError(t, "GET without a token", st, b, http.StatusUnauthorized, "M_MISSING_TOKEN")

			st, b = s.Do(t, http.MethodGet, p("@x:elsewhere.test"), admin.AccessToken, nil)
			testserver.WantError(t, "remote user", st, b, http.StatusBadRequest, "M_INVALID_PARAM")
			st, b = s.Do(t, http.MethodPut, p("@x:elsewhere.test"), admin.AccessToken, body)
			testserver.WantError(t, "PUT remote user", st, b, http.StatusBadRequest, "M_INVALID_PARAM")
			st, b = s.Do(t, http.MethodGet, p("not-a-user-id"), admin.AccessToken, nil)
			testserver.WantError(t, "not a user ID", st, b, http.StatusBadRequest, "M_INVALID_PARAM")
			st, b = s.Do(t, http.MethodGet, p("@nobody:hs1.test"), admin.AccessToken, nil)
			testserver.WantError(t, "unknown user", st, b, http.StatusNotFound, "M_NOT_FOUND")
			st, b = s.Do(t, http.MethodPut, p(s.UserID("gone")), admin.AccessToken, body)
			testserver.WantError(t, "deactivated user", st, b, http.StatusNotFound, "M_NOT_FOUND")
			st, b = s.Do(t, http.MethodPut, p(s.UserID("root2")), admin.AccessToken, body)
			testserver.WantError(t, "another admin", st, b, http.StatusForbidden, "M_FORBIDDEN")
			st, b = s.Do(t, http.MethodPut, p(s.UserID("root")), admin.AccessToken, body)
			testserver.WantError(t, "own account", st, b, http.StatusForbidden, "M_FORBIDDEN")
			st, b = s.Do(t, http.MethodGet, p(s.UserID("root")), admin.AccessToken, nil)
			testserver.WantStatus(t, "GET own account", st, b, http.StatusOK)

			for _, bad := range []any{map[string]any{}, map[string]any{kind.field: "yes"}, map[string]any{kind.field: nil}, "[true]", "{"} {
				st, b = s.Do(t, http.MethodPut, p(aliceID), admin.AccessToken, bad)
				if st != http.StatusBadRequest {
					t.Fatalf("PUT %v: status %d, want 400; %v", bad, st, b)
				}
			}

			st, b = s.Do(t, http.MethodGet, p(aliceID), admin.AccessToken, nil)
			testserver.WantStatus(t, "GET before", st, b, http.StatusOK)
			if b[kind.field] != false {
				t.Fatalf("GET before: %v", b)
			}
			st, b = s.Do(t, http.MethodPut, p(aliceID), admin.AccessToken, body)
			testserver.WantStatus(t, "PUT true", st, b, http.StatusOK)
			if b[kind.field] != true {
				t.Fatalf("PUT true: %v", b)
			}
			st, b = s.Do(t, http.MethodGet, p(aliceID), other.AccessToken, nil)
			if st != http.StatusOK || b[kind.field] != true {
				t.Fatalf("GET after PUT: %d %v", st, b)
			}
			st, b = s.Do(t, http.MethodPut, p(aliceID), admin.AccessToken, map[string]any{kind.field: false})
			if st != http.StatusOK || b[kind.field] != false {
				t.Fatalf("PUT false: %d %v", st, b)
			}
			st, b = s.Do(t, http.MethodGet, "/_matrix/client/unstable/uk.timedout.msc4323/admin/"+kind.path+"/"+url.PathEscape(aliceID), admin.AccessToken, nil)
			if st != http.StatusOK || b[kind.field] != false {
				t.Fatalf("GET unstable path: %d %v", st, b)
			}
		}

		caps := func(c *mautrix.Client) map[string]any {
			st, b := s.Do(t, http.MethodGet, "/_matrix/client/v3/capabilities", c.AccessToken, nil)
			testserver.WantStatus(t, "capabilities", st, b, http.StatusOK)
			return b["capabilities"].(map[string]any)
		}
		if m, ok := caps(admin)["m.account_moderation"].(map[string]any); !ok || m["suspend"] != true || m["lock"] != true {
			t.Fatalf("admin's m.account_moderation: %v", caps(admin)["m.account_moderation"])
		}
		if m, ok := caps(alice)["m.account_moderation"]; ok {
			t.Fatalf("a non-admin sees m.account_moderation: %v", m)
		}
	})
}

// TestSynapseSuspendEndpoint: Synapse's PUT /_synapse/admin/v1/suspend
// with {"suspend": bool}, as synapse-admin and Draupnir call it, suspends
// and unsuspends with effect on the user's next request.
func TestSynapseSuspendEndpoint(t *testing.T) {
	testserver.EachEngine(t, modConfig, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		admin := s.RegisterAdmin("root", "pw-root")
		alice := s.Register("alice", "pw-alice")
		aliceID := s.UserID("alice")
		p := admBase + "/suspend/" + url.PathEscape(aliceID)

		st, b := s.Do(t, http.MethodPut, p, alice.AccessToken, map[string]any{"suspend": true})
		testserver.WantError(t, "by non-admin", st, b, http.StatusForbidden, "M_FORBIDDEN")
		st, b = s.Do(t, http.MethodPut, admBase+"/suspend/@nobody:hs1.test", admin.AccessToken, map[string]any{"suspend": true})
		testserver.WantError(t, "unknown", st, b, http.StatusNotFound, "M_NOT_FOUND")
		st, b = s.Do(t, http.MethodPut, admBase+"/suspend/@x:elsewhere.test", admin.AccessToken, map[string]any{"suspend": true})
		testserver.WantStatus(t, "remote", st, b, http.StatusBadRequest)
		st, b = s.Do(t, http.MethodPut, p, admin.AccessToken, map[string]any{"suspended": true})
		testserver.WantError(t, "spec field name", st, b, http.StatusBadRequest, "M_BAD_JSON")

		st, b = s.Do(t, http.MethodPut, p, admin.AccessToken, map[string]any{"suspend": true})
		testserver.WantStatus(t, "suspend", st, b, http.StatusOK)
		if b["user_"+aliceID+"_suspended"] != true {
			t.Fatalf("suspend answer: %v", b)
		}
		_, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{})
		testserver.WantHTTPError(t, "createRoom while suspended", err, http.StatusForbidden, "M_USER_SUSPENDED")

		st, b = s.Do(t, http.MethodPut, p, admin.AccessToken, map[string]any{"suspend": false})
		if st != http.StatusOK || b["user_"+aliceID+"_suspended"] != false {
			t.Fatalf("unsuspend: %d %v", st, b)
		}
		if _, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{}); err != nil {
			t.Fatalf("createRoom after unsuspending: %v", err)
		}
	})
}
