package clientapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// profURL is the URL of a profile or one of its fields.
func profURL(s *testserver.Server, userID string, key ...string) string {
	u := s.URL + "/_matrix/client/v3/profile/" + url.PathEscape(userID)
	for _, k := range key {
		u += "/" + url.PathEscape(k)
	}
	return u
}

// TestProfileDisplayNameAndAvatar checks the two classic fields through
// mautrix and over the wire, read without authentication.
func TestProfileDisplayNameAndAvatar(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw-alice")
		me := s.UserID("alice")
		anon := s.Client()

		// A fresh account has a profile, readable without a token.
		wireOK(t, "fresh profile", testserver.Send(t, nil, "GET", profURL(s, me), "", nil))

		if err := alice.SetDisplayName(ctx, "Alice"); err != nil {
			t.Fatalf("set displayname: %v", err)
		}
		avatar := id.ContentURI{Homeserver: "hs1.test", FileID: "abcDEF123"}
		if err := alice.SetAvatarURL(ctx, avatar); err != nil {
			t.Fatalf("set avatar: %v", err)
		}

		p, err := anon.GetProfile(ctx, id.UserID(me))
		if err != nil || p.DisplayName != "Alice" || p.AvatarURL != avatar {
			t.Fatalf("profile: %+v %v", p, err)
		}
		dn, err := anon.GetDisplayName(ctx, id.UserID(me))
		if err != nil || dn.DisplayName != "Alice" {
			t.Fatalf("displayname: %+v %v", dn, err)
		}
		av, err := anon.GetAvatarURL(ctx, id.UserID(me))
		if err != nil || av != avatar {
			t.Fatalf("avatar_url: %v %v", av, err)
		}

		// Field GETs answer exactly the one field.
		r := testserver.Send(t, nil, "GET", profURL(s, me, "displayname"), "", nil)
		wireOK(t, "GET displayname", r)
		if len(r.JSON) != 1 || r.JSON["displayname"] != "Alice" {
			t.Fatalf("GET displayname: %s", r.Raw)
		}
		r = testserver.Send(t, nil, "GET", profURL(s, me, "avatar_url"), "", nil)
		wireOK(t, "GET avatar_url", r)
		if len(r.JSON) != 1 || r.JSON["avatar_url"] != "mxc://hs1.test/abcDEF123" {
			t.Fatalf("GET avatar_url: %s", r.Raw)
		}
		r = testserver.Send(t, nil, "GET", profURL(s, me), "", nil)
		if r.JSON["displayname"] != "Alice" || r.JSON["avatar_url"] != "mxc://hs1.test/abcDEF123" {
			t.Fatalf("GET profile: %s", r.Raw)
		}
		// The legacy r0 path serves the same.
		r = testserver.Send(t, nil, "GET", s.URL+"/_matrix/client/r0/profile/"+me+"/displayname", "", nil)
		if r.Status != http.StatusOK || r.JSON["displayname"] != "Alice" {
			t.Fatalf("r0 displayname: %d %s", r.Status, r.Raw)
		}

		// Invalid values are refused and change nothing.
		tok := alice.AccessToken
		// An avatar_url that is not an mxc:// URI is stored as given: the
		// spec does not restrict it and Synapse accepts it.
		wireOK(t, "http avatar", testserver.Send(t, nil, "PUT", profURL(s, me, "avatar_url"), tok, map[string]any{"avatar_url": "https://example.com/a.png"}))
		if r := testserver.Send(t, nil, "GET", profURL(s, me, "avatar_url"), "", nil); r.JSON["avatar_url"] != "https://example.com/a.png" {
			t.Fatalf("non-mxc avatar_url: %d %s", r.Status, r.Raw)
		}
		if err := alice.SetAvatarURL(ctx, id.ContentURI{}); err != nil {
			// An empty ContentURI is sent as "", which clears the avatar.
			t.Fatalf("clear avatar: %v", err)
		}
		if r := testserver.Send(t, nil, "GET", profURL(s, me, "avatar_url"), "", nil); r.Status != http.StatusNotFound {
			t.Fatalf("avatar after clearing: %d %s", r.Status, r.Raw)
		}
		wireErr(t, "numeric displayname", testserver.Send(t, nil, "PUT", profURL(s, me, "displayname"), tok, `{"displayname": 5}`),
			http.StatusBadRequest, "M_BAD_JSON")
		long := strings.Repeat("a", 257)
		wireErr(t, "long displayname", testserver.Send(t, nil, "PUT", profURL(s, me, "displayname"), tok, map[string]any{"displayname": long}),
			http.StatusBadRequest, "M_TOO_LARGE")
		// 256 bytes is the limit, counted in bytes: 128 two-byte characters fit.
		exact := strings.Repeat("é", 128)
		wireOK(t, "256-byte displayname", testserver.Send(t, nil, "PUT", profURL(s, me, "displayname"), tok, map[string]any{"displayname": exact}))
		wireErr(t, "257-byte displayname", testserver.Send(t, nil, "PUT", profURL(s, me, "displayname"), tok, map[string]any{"displayname": exact + "a"}),
			http.StatusBadRequest, "M_TOO_LARGE")
		if dn, err := anon.GetDisplayName(ctx, id.UserID(me)); err != nil || dn.DisplayName != exact {
			t.Fatalf("displayname after refused writes: %+v %v", dn, err)
		}
	})
}

// TestProfileClearDisplayName checks that null and "" remove the
// displayname.
func TestProfileClearDisplayName(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw-alice")
		me := s.UserID("alice")
		for _, clear := range []string{`{"displayname": null}`, `{"displayname": ""}`} {
			if err := alice.SetDisplayName(ctx, "Alice"); err != nil {
				t.Fatalf("set: %v", err)
			}
			wireOK(t, clear, testserver.Send(t, nil, "PUT", profURL(s, me, "displayname"), alice.AccessToken, clear))
			wireErr(t, "after "+clear, testserver.Send(t, nil, "GET", profURL(s, me, "displayname"), "", nil), http.StatusNotFound, "M_NOT_FOUND")
			r := testserver.Send(t, nil, "GET", profURL(s, me), "", nil)
			if _, has := r.JSON["displayname"]; r.Status != http.StatusOK || has {
				t.Fatalf("profile after %s: %d %s", clear, r.Status, r.Raw)
			}
		}
		// DELETE removes it too.
		if err := alice.SetDisplayName(ctx, "Alice"); err != nil {
			t.Fatalf("set: %v", err)
		}
		if err := alice.DeleteProfileField(ctx, "displayname"); err != nil {
			t.Fatalf("delete displayname: %v", err)
		}
		if dn, err := alice.GetOwnDisplayName(ctx); err != nil || dn.DisplayName != "" {
			t.Fatalf("after delete: %+v %v", dn, err)
		}
	})
}

// TestProfileCustomFields checks v1.16 extended profiles: any JSON value
// under a namespaced key, m.tz, and DELETE.
func TestProfileCustomFields(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw-alice")
		me := s.UserID("alice")
		anon := s.Client()

		values := []any{
			map[string]any{"nested": []any{1.0, "two", map[string]any{"three": nil}}, "ok": true},
			[]any{"a", "b"},
			42.5,
			false,
			"plain string",
			"unicode ☃ \u00e9",
		}
		for _, v := range values {
			if err := alice.SetProfileField(ctx, "com.example.field", v); err != nil {
				t.Fatalf("set %v: %v", v, err)
			}
			var got map[string]any
			if err := anon.GetProfileField(ctx, id.UserID(me), "com.example.field", &got); err != nil {
				t.Fatalf("get: %v", err)
			}
			if len(got) != 1 || !reflect.DeepEqual(got["com.example.field"], v) {
				t.Fatalf("round trip: got %#v, want %#v", got, v)
			}
		}
		// null is stored, not treated as a deletion, for custom keys.
		wireOK(t, "null custom", testserver.Send(t, nil, "PUT", profURL(s, me, "com.example.nullable"), alice.AccessToken, `{"com.example.nullable": null}`))
		r := testserver.Send(t, nil, "GET", profURL(s, me, "com.example.nullable"), "", nil)
		if v, has := r.JSON["com.example.nullable"]; r.Status != http.StatusOK || !has || v != nil {
			t.Fatalf("null custom field: %d %s", r.Status, r.Raw)
		}

		if err := alice.SetProfileField(ctx, "m.tz", "Europe/London"); err != nil {
			t.Fatalf("set m.tz: %v", err)
		}
		wireErr(t, "numeric m.tz", testserver.Send(t, nil, "PUT", profURL(s, me, "m.tz"), alice.AccessToken, `{"m.tz": 1}`), http.StatusBadRequest, "M_BAD_JSON")
		if err := alice.SetDisplayName(ctx, "Alice"); err != nil {
			t.Fatalf("set displayname: %v", err)
		}

		// The whole profile has every field.
		r = testserver.Send(t, nil, "GET", profURL(s, me), "", nil)
		wireOK(t, "profile", r)
		if r.JSON["m.tz"] != "Europe/London" || r.JSON["displayname"] != "Alice" || r.JSON["com.example.field"] != "unicode ☃ \u00e9" {
			t.Fatalf("profile: %s", r.Raw)
		}
		if v, has := r.JSON["com.example.nullable"]; !has || v != nil {
			t.Fatalf("profile lacks the null field: %s", r.Raw)
		}

		// DELETE, then 404; deleting again still succeeds.
		if err := alice.DeleteProfileField(ctx, "com.example.field"); err != nil {
			t.Fatalf("delete: %v", err)
		}
		var got map[string]any
		if err := anon.GetProfileField(ctx, id.UserID(me), "com.example.field", &got); !errors.Is(err, mautrix.MNotFound) {
			t.Fatalf("after delete: %v %v, want M_NOT_FOUND", got, err)
		}
		wireOK(t, "delete absent", testserver.Send(t, nil, "DELETE", profURL(s, me, "com.example.field"), alice.AccessToken, nil))
		if err := alice.DeleteProfileField(ctx, "m.tz"); err != nil {
			t.Fatalf("delete m.tz: %v", err)
		}
		r = testserver.Send(t, nil, "GET", profURL(s, me), "", nil)
		if _, has := r.JSON["m.tz"]; has {
			t.Fatalf("m.tz after delete: %s", r.Raw)
		}
		if _, has := r.JSON["com.example.field"]; has {
			t.Fatalf("custom field after delete: %s", r.Raw)
		}
		wireErr(t, "never set", testserver.Send(t, nil, "GET", profURL(s, me, "com.example.never"), "", nil), http.StatusNotFound, "M_NOT_FOUND")

		// The capability that announces all this.
		caps := testserver.Send(t, nil, "GET", s.URL+"/_matrix/client/v3/capabilities", alice.AccessToken, nil)
		c, _ := caps.JSON["capabilities"].(map[string]any)
		if pf, _ := c["m.profile_fields"].(map[string]any); pf["enabled"] != true {
			t.Fatalf("m.profile_fields: %s", caps.Raw)
		}
	})
}

// TestProfileErrors checks the errors of PUT, GET and DELETE on profile
// fields.
func TestProfileErrors(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw-alice")
		bob := s.Register("bob", "pw-bob")
		me := s.UserID("alice")
		tok := alice.AccessToken

		// Key names.
		r := testserver.Send(t, nil, "PUT", profURL(s, me, "Bad Key"), tok, map[string]any{"Bad Key": "x"})
		wireErr(t, "bad key", r, http.StatusBadRequest, "M_INVALID_PARAM")
		r = testserver.Send(t, nil, "PUT", profURL(s, me, "nodots"), tok, map[string]any{"nodots": "x"})
		wireErr(t, "un-namespaced key", r, http.StatusBadRequest, "M_INVALID_PARAM")
		wireErr(t, "delete bad key", testserver.Send(t, nil, "DELETE", profURL(s, me, "Bad Key"), tok, nil), http.StatusBadRequest, "M_INVALID_PARAM")
		longKey := "com.example." + strings.Repeat("k", 250)
		r = testserver.Send(t, nil, "PUT", profURL(s, me, longKey), tok, map[string]any{longKey: "x"})
		wireErr(t, "long key", r, http.StatusBadRequest, "M_KEY_TOO_LARGE")
		okKey := "com.example." + strings.Repeat("k", 255-len("com.example."))
		wireOK(t, "255-byte key", testserver.Send(t, nil, "PUT", profURL(s, me, okKey), tok, map[string]any{okKey: "x"}))

		// The body must hold the key of the path.
		r = testserver.Send(t, nil, "PUT", profURL(s, me, "com.example.field"), tok, map[string]any{"com.example.other": "x"})
		wireErr(t, "missing key", r, http.StatusBadRequest, "M_MISSING_PARAM")
		wireErr(t, "empty body object", testserver.Send(t, nil, "PUT", profURL(s, me, "displayname"), tok, "{}"), http.StatusBadRequest, "M_MISSING_PARAM")

		// 64 KiB for the whole profile.
		big := strings.Repeat("z", 40<<10)
		wireOK(t, "first big field", testserver.Send(t, nil, "PUT", profURL(s, me, "com.example.big1"), tok, map[string]any{"com.example.big1": big}))
		r = testserver.Send(t, nil, "PUT", profURL(s, me, "com.example.big2"), tok, map[string]any{"com.example.big2": big})
		wireErr(t, "profile too large", r, http.StatusBadRequest, "M_PROFILE_TOO_LARGE")
		wireErr(t, "big2 not stored", testserver.Send(t, nil, "GET", profURL(s, me, "com.example.big2"), "", nil), http.StatusNotFound, "M_NOT_FOUND")
		// Replacing the big field with another of the same size is fine.
		wireOK(t, "replace big field", testserver.Send(t, nil, "PUT", profURL(s, me, "com.example.big1"), tok, map[string]any{"com.example.big1": big + "!"}))

		// Other users' profiles.
		r = testserver.Send(t, nil, "PUT", profURL(s, s.UserID("bob"), "displayname"), tok, map[string]any{"displayname": "Not Bob"})
		wireErr(t, "set bob's displayname", r, http.StatusForbidden, "M_FORBIDDEN")
		r = testserver.Send(t, nil, "DELETE", profURL(s, s.UserID("bob"), "displayname"), tok, nil)
		wireErr(t, "delete bob's displayname", r, http.StatusForbidden, "M_FORBIDDEN")
		r = testserver.Send(t, nil, "PUT", profURL(s, "@carol:elsewhere.test", "displayname"), tok, map[string]any{"displayname": "Carol"})
		wireErr(t, "set a remote user's displayname", r, http.StatusForbidden, "M_FORBIDDEN")
		if err := bob.SetDisplayName(ctx, "Bob"); err != nil {
			t.Fatalf("bob: %v", err)
		}
		if dn, err := alice.GetDisplayName(ctx, bob.UserID); err != nil || dn.DisplayName != "Bob" {
			t.Fatalf("bob's displayname: %+v %v", dn, err)
		}

		// Unknown users.
		nobody := s.UserID("nobody")
		wireErr(t, "unknown profile", testserver.Send(t, nil, "GET", profURL(s, nobody), "", nil), http.StatusNotFound, "M_NOT_FOUND")
		wireErr(t, "unknown displayname", testserver.Send(t, nil, "GET", profURL(s, nobody, "displayname"), "", nil), http.StatusNotFound, "M_NOT_FOUND")
		if _, err := alice.GetProfile(ctx, id.UserID(nobody)); !errors.Is(err, mautrix.MNotFound) {
			t.Fatalf("mautrix unknown profile: %v", err)
		}

		// Writing needs a token.
		r = testserver.Send(t, nil, "PUT", profURL(s, me, "displayname"), "", map[string]any{"displayname": "x"})
		wireErr(t, "no token", r, http.StatusUnauthorized, "M_MISSING_TOKEN")
		r = testserver.Send(t, nil, "DELETE", profURL(s, me, "displayname"), "", nil)
		wireErr(t, "delete without token", r, http.StatusUnauthorized, "M_MISSING_TOKEN")
	})
}

// TestProfileRawValuesPreserved checks that a custom value comes back
// as the same JSON, numbers included.
func TestProfileRawValuesPreserved(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw-alice")
		me := s.UserID("alice")
		body := `{"com.example.n": {"big": 12345678901234567890, "f": 1.5e-7, "s": "\u2603"}}`
		wireOK(t, "set", testserver.Send(t, nil, "PUT", profURL(s, me, "com.example.n"), alice.AccessToken, body))
		r := testserver.Send(t, nil, "GET", profURL(s, me, "com.example.n"), "", nil)
		wireOK(t, "get", r)
		var got map[string]map[string]any
		dec := json.NewDecoder(strings.NewReader(string(r.Raw)))
		dec.UseNumber()
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("decode: %v: %s", err, r.Raw)
		}
		v := got["com.example.n"]
		if n, _ := v["big"].(json.Number); n != "12345678901234567890" {
			t.Fatalf("big number changed: %s", r.Raw)
		}
		if n, _ := v["f"].(json.Number); n == "" {
			t.Fatalf("float missing: %s", r.Raw)
		} else if f, err := n.Float64(); err != nil || f != 1.5e-7 {
			t.Fatalf("float changed: %s", r.Raw)
		}
		if v["s"] != "☃" {
			t.Fatalf("string changed: %s", r.Raw)
		}
	})
}
