package clientapi_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestVersionsUnstableFeatures: /versions advertises the unstable flags
// clients gate features on, cross-signing first (Element Web refuses to
// set it up without org.matrix.e2e_cross_signing), as mautrix-go reads
// them; a flag for something Myelin lacks is false, not left to chance.
func TestVersionsUnstableFeatures(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		resp, err := s.Client().Versions(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, flag := range []string{"org.matrix.e2e_cross_signing", "org.matrix.msc2432", "org.matrix.msc3440.stable",
			"org.matrix.msc2285.stable", "org.matrix.msc3827.stable", "org.matrix.msc3771", "org.matrix.msc3773",
			"org.matrix.msc3882", "org.matrix.msc3981", "uk.tcpip.msc4133.stable", "com.beeper.msc4169",
			"uk.half-shot.msc2666.query_mutual_rooms.stable"} {
			if !resp.UnstableFeatures[flag] {
				t.Errorf("unstable_features[%s] not true: %v", flag, resp.UnstableFeatures)
			}
		}
		if !resp.Supports(mautrix.FeatureRedactSendAsEvent) || !resp.Supports(mautrix.FeatureStableMutualRooms) {
			t.Errorf("mautrix-go does not see MSC4169 or stable mutual rooms: %v", resp.UnstableFeatures)
		}
		// Up to v1.19 every requirement is met (docs/compliance.md,
		// "Spec versions v1.12 to v1.19"); nothing later is claimed.
		if !resp.ContainsGreaterOrEqual(mautrix.SpecV119) || resp.ContainsGreaterOrEqual(mautrix.MustParseSpecVersion("v1.20")) {
			t.Errorf("versions %v: want up to v1.19", resp.Versions)
		}
		for _, flag := range []string{"org.matrix.label_based_filtering", "io.element.e2ee_forced.public"} {
			if v, ok := resp.UnstableFeatures[flag]; !ok || v {
				t.Errorf("unstable_features[%s] = %v (present %v), want false", flag, v, ok)
			}
		}
	})
}

// TestUnstablePrefixAliases: the endpoints Synapse serves under
// /_matrix/client/unstable (every r0/v3 servlet by default) answer there
// as under /v3, cross-signing and key backup included, which older
// clients still call there.
func TestUnstablePrefixAliases(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw-alice")
		aliceID := string(alice.UserID)
		const prefix = "/_matrix/client/unstable"
		cs := newCrossSigning(t, aliceID)
		st, body := s.Do(t, http.MethodPost, prefix+"/keys/device_signing/upload", tok(alice), cs.upload)
		testserver.WantStatus(t, "unstable device_signing/upload", st, body, http.StatusOK)
		q, err := alice.QueryKeys(context.Background(), &mautrix.ReqQueryKeys{DeviceKeys: mautrix.DeviceKeysRequest{alice.UserID: {}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := q.MasterKeys[alice.UserID]; !ok {
			t.Fatalf("master key uploaded under /unstable not served: %+v", q)
		}
		st, body = s.Do(t, http.MethodPost, prefix+"/keys/signatures/upload", tok(alice), map[string]any{})
		testserver.WantStatus(t, "unstable signatures/upload", st, body, http.StatusOK)
		// No backup yet: the endpoint's own 404, not the router's.
		st, body = s.Do(t, http.MethodGet, prefix+"/room_keys/version", tok(alice), nil)
		testserver.WantError(t, "unstable room_keys/version", st, body, http.StatusNotFound, "M_NOT_FOUND")
		st, body = s.Do(t, http.MethodGet, prefix+"/account/whoami", tok(alice), nil)
		testserver.WantStatus(t, "unstable whoami", st, body, http.StatusOK)
		if body["user_id"] != aliceID {
			t.Fatalf("unstable whoami: %v", body)
		}

		// The MSC paths of /v1 endpoints that clients still call: mautrix-go
		// asks MSC3266's room summary until v1.15 is advertised.
		room, err := alice.CreateRoom(context.Background(), &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		sum, err := alice.GetRoomSummary(context.Background(), room.RoomID.String())
		if err != nil || sum.RoomID != room.RoomID {
			t.Fatalf("room summary through mautrix-go: %+v %v", sum, err)
		}
		r := url.PathEscape(room.RoomID.String())
		for _, p := range []string{"/im.nheko.summary/rooms/" + r + "/summary", "/uk.half-shot.msc2666/user/mutual_rooms?user_id=" + url.QueryEscape(s.UserID("bob")),
			"/org.matrix.msc3030/rooms/" + r + "/timestamp_to_event?dir=b&ts=" + strconv.FormatInt(time.Now().UnixMilli()+60000, 10),
			"/org.matrix.msc2432/rooms/" + r + "/aliases"} {
			st, body = s.Do(t, http.MethodGet, prefix+p, tok(alice), nil)
			testserver.WantStatus(t, p, st, body, http.StatusOK)
		}
	})
}

// TestNoOAuthMetadata: while the OAuth 2.0 API is not offered, its
// metadata answers 404 M_UNRECOGNIZED (spec v1.15), at the stable path
// and at MSC2965's, so that clients fall back to the legacy login API.
func TestNoOAuthMetadata(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		for _, p := range []string{"/_matrix/client/v1/auth_metadata", "/_matrix/client/unstable/org.matrix.msc2965/auth_metadata",
			"/_matrix/client/unstable/org.matrix.msc2965/auth_issuer"} {
			st, body := s.Do(t, http.MethodGet, p, "", nil)
			testserver.WantError(t, p, st, body, http.StatusNotFound, "M_UNRECOGNIZED")
		}
		// The legacy login API is what is offered instead.
		flows, err := s.Client().GetLoginFlows(context.Background())
		if err != nil || !flows.HasFlow(mautrix.AuthTypePassword) {
			t.Fatalf("login flows: %v %v", flows, err)
		}
	})
}

// TestRequestTokenMediumNotSupported: a server that sends no validation
// emails or texts answers each requestToken endpoint 400
// M_THREEPID_MEDIUM_NOT_SUPPORTED (spec v1.13, MSC4178), not 404.
func TestRequestTokenMediumNotSupported(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		for _, p := range []string{"register/email", "register/msisdn", "account/password/email", "account/password/msisdn",
			"account/3pid/email", "account/3pid/msisdn"} {
			for _, prefix := range []string{"/_matrix/client/v3/", "/_matrix/client/r0/"} {
				path := prefix + p + "/requestToken"
				st, body := s.Do(t, http.MethodPost, path, "", map[string]any{
					"client_secret": "secret", "email": "a@example.org", "country": "GB", "phone_number": "07700900000", "send_attempt": 1,
				})
				testserver.WantError(t, path, st, body, http.StatusBadRequest, "M_THREEPID_MEDIUM_NOT_SUPPORTED")
			}
		}
	})
}

// TestCapabilitiesForgetUponLeave: m.forget_forced_upon_leave (spec
// v1.18) says false: a left room stays until the user forgets it.
func TestCapabilitiesForgetUponLeave(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw-alice")
		r := testserver.Send(t, nil, http.MethodGet, s.URL+"/_matrix/client/v3/capabilities", tok(alice), nil)
		testserver.WantStatus(t, "capabilities", r.Status, r.JSON, http.StatusOK)
		c, _ := r.JSON["capabilities"].(map[string]any)["m.forget_forced_upon_leave"].(map[string]any)
		if v, ok := c["enabled"].(bool); !ok || v {
			t.Fatalf("m.forget_forced_upon_leave = %v, want enabled false: %s", c, r.Raw)
		}
	})
}

// TestDefaultRoomVersion: rooms created without a version are version 12
// and /capabilities says so; MYELIN_DEFAULT_ROOM_VERSION=11 (harnesses
// that federate with servers predating version 12) makes them 11.
func TestDefaultRoomVersion(t *testing.T) {
	check := func(t *testing.T, s *testserver.Server, want string) {
		alice := s.Register("alice", "pw-alice")
		ctx := context.Background()
		caps, err := alice.Capabilities(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if caps.RoomVersions == nil || caps.RoomVersions.Default != want {
			t.Fatalf("capabilities default room version %+v, want %s", caps.RoomVersions, want)
		}
		room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{})
		if err != nil {
			t.Fatal(err)
		}
		var create struct {
			RoomVersion string `json:"room_version"`
		}
		if err := alice.StateEvent(ctx, room.RoomID, event.StateCreate, "", &create); err != nil {
			t.Fatal(err)
		}
		if create.RoomVersion != want {
			t.Fatalf("new room has version %q, want %s", create.RoomVersion, want)
		}
	}
	t.Run("default", func(t *testing.T) {
		testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) { check(t, s, "12") })
	})
	t.Run("env", func(t *testing.T) {
		fromEnv, err := config.Load("", func(k string) (string, bool) {
			return "11", k == "MYELIN_DEFAULT_ROOM_VERSION"
		})
		if err != nil {
			t.Fatal(err)
		}
		testserver.EachEngine(t, func(c *config.Config) { c.Rooms.DefaultVersion = fromEnv.Rooms.DefaultVersion },
			func(t *testing.T, s *testserver.Server) { check(t, s, "11") })
	})
}
