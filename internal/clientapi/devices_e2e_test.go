package clientapi_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// devLogin logs localpart in on a new device and returns a client for it.
func devLogin(t *testing.T, s *testserver.Server, localpart, password, name string) *mautrix.Client {
	t.Helper()
	c := s.Client()
	_, err := c.Login(context.Background(), &mautrix.ReqLogin{
		Type:                     mautrix.AuthTypePassword,
		Identifier:               mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: localpart},
		Password:                 password,
		InitialDeviceDisplayName: name,
		StoreCredentials:         true,
	})
	if err != nil {
		t.Fatalf("login %s: %v", localpart, err)
	}
	return c
}

// devPasswordAuth is an m.login.password UIA auth object.
func devPasswordAuth(user, password, session string) map[string]any {
	return map[string]any{
		"type":       "m.login.password",
		"identifier": map[string]any{"type": "m.id.user", "user": user},
		"password":   password,
		"session":    session,
	}
}

// devChallenge asserts a UIA 401 offering [[m.login.password]] and
// returns its session.
func devChallenge(t *testing.T, what string, r testserver.Response) string {
	t.Helper()
	if r.Status != http.StatusUnauthorized {
		t.Fatalf("%s: got %d %s, want the 401 UIA challenge", what, r.Status, r.Raw)
	}
	flows, _ := r.JSON["flows"].([]any)
	if len(flows) != 1 {
		t.Fatalf("%s: flows %s", what, r.Raw)
	}
	stages, _ := flows[0].(map[string]any)["stages"].([]any)
	if len(stages) != 1 || stages[0] != "m.login.password" {
		t.Fatalf("%s: flows %s, want [[m.login.password]]", what, r.Raw)
	}
	session, _ := r.JSON["session"].(string)
	if session == "" {
		t.Fatalf("%s: challenge without a session: %s", what, r.Raw)
	}
	return session
}

func devTokenDead(t *testing.T, what string, c *mautrix.Client) {
	t.Helper()
	if _, err := c.Whoami(context.Background()); !errors.Is(err, mautrix.MUnknownToken) {
		t.Fatalf("%s: whoami: %v, want M_UNKNOWN_TOKEN", what, err)
	}
}

func devIDs(t *testing.T, c *mautrix.Client) []string {
	t.Helper()
	resp, err := c.GetDevicesInfo(context.Background())
	if err != nil {
		t.Fatalf("devices: %v", err)
	}
	var ids []string
	for _, d := range resp.Devices {
		ids = append(ids, d.DeviceID.String())
	}
	slices.Sort(ids)
	return ids
}

// TestDevicesList checks GET /devices and its fields.
func TestDevicesList(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		before := time.Now().UnixMilli()
		alice := s.Register("alice", "pw-alice")
		laptop := devLogin(t, s, "alice", "pw-alice", "laptop")
		s.Register("bob", "pw-bob")

		r := testserver.Send(t, nil, "GET", s.URL+"/_matrix/client/v3/devices", alice.AccessToken, nil)
		wireOK(t, "devices", r)
		list, _ := r.JSON["devices"].([]any)
		if len(list) != 2 {
			t.Fatalf("devices: want alice's 2, got %s", r.Raw)
		}
		seen := map[string]map[string]any{}
		for _, d := range list {
			dev := d.(map[string]any)
			id, _ := dev["device_id"].(string)
			seen[id] = dev
			if ts, _ := dev["last_seen_ts"].(float64); int64(ts) < before || int64(ts) > time.Now().UnixMilli() {
				t.Fatalf("device %s last_seen_ts %v", id, dev["last_seen_ts"])
			}
			if dev["last_seen_ip"] != "127.0.0.1" {
				t.Fatalf("device %s last_seen_ip %v", id, dev["last_seen_ip"])
			}
		}
		if seen[alice.DeviceID.String()] == nil || seen[laptop.DeviceID.String()] == nil {
			t.Fatalf("devices: %s lacks %s or %s", r.Raw, alice.DeviceID, laptop.DeviceID)
		}
		if seen[laptop.DeviceID.String()]["display_name"] != "laptop" {
			t.Fatalf("laptop display_name: %s", r.Raw)
		}

		// mautrix agrees, and the r0 prefix serves the same list.
		if ids := devIDs(t, alice); len(ids) != 2 {
			t.Fatalf("mautrix devices: %v", ids)
		}
		r0 := testserver.Send(t, nil, "GET", s.URL+"/_matrix/client/r0/devices", laptop.AccessToken, nil)
		wireOK(t, "r0 devices", r0)
		if l, _ := r0.JSON["devices"].([]any); len(l) != 2 {
			t.Fatalf("r0 devices: %s", r0.Raw)
		}
	})
}

// TestDeviceGet checks GET /devices/{deviceId}, including 404 for an
// unknown device and for another user's.
func TestDeviceGet(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw-alice")
		laptop := devLogin(t, s, "alice", "pw-alice", "laptop")
		bob := s.Register("bob", "pw-bob")

		d, err := alice.GetDeviceInfo(ctx, laptop.DeviceID)
		if err != nil || d.DeviceID != laptop.DeviceID || d.DisplayName != "laptop" || d.LastSeenIP != "127.0.0.1" || d.LastSeenTS == 0 {
			t.Fatalf("device: %+v %v", d, err)
		}
		if _, err := alice.GetDeviceInfo(ctx, "NOSUCHDEVICE"); !errors.Is(err, mautrix.MNotFound) {
			t.Fatalf("unknown device: %v, want M_NOT_FOUND", err)
		}
		r := testserver.Send(t, nil, "GET", s.URL+"/_matrix/client/v3/devices/"+bob.DeviceID.String(), alice.AccessToken, nil)
		wireErr(t, "another user's device", r, http.StatusNotFound, "M_NOT_FOUND")
		r = testserver.Send(t, nil, "GET", s.URL+"/_matrix/client/v3/devices/"+alice.DeviceID.String(), "", nil)
		wireErr(t, "without token", r, http.StatusUnauthorized, "M_MISSING_TOKEN")
	})
}

// TestDeviceRename checks PUT /devices/{deviceId}.
func TestDeviceRename(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw-alice")
		laptop := devLogin(t, s, "alice", "pw-alice", "laptop")
		bob := s.Register("bob", "pw-bob")

		if err := alice.SetDeviceInfo(ctx, laptop.DeviceID, &mautrix.ReqDeviceInfo{DisplayName: "work laptop"}); err != nil {
			t.Fatalf("rename: %v", err)
		}
		if d, err := laptop.GetDeviceInfo(ctx, laptop.DeviceID); err != nil || d.DisplayName != "work laptop" {
			t.Fatalf("after rename: %+v %v", d, err)
		}
		// Without display_name the name is unchanged (spec).
		url := s.URL + "/_matrix/client/v3/devices/" + laptop.DeviceID.String()
		wireOK(t, "empty update", testserver.Send(t, nil, "PUT", url, alice.AccessToken, "{}"))
		if d, err := laptop.GetDeviceInfo(ctx, laptop.DeviceID); err != nil || d.DisplayName != "work laptop" {
			t.Fatalf("after empty update: %+v %v", d, err)
		}
		// Unicode names count characters: 100 is fine, 101 is too long.
		ok := strings.Repeat("é", 100)
		wireOK(t, "100 characters", testserver.Send(t, nil, "PUT", url, alice.AccessToken, map[string]any{"display_name": ok}))
		if d, err := laptop.GetDeviceInfo(ctx, laptop.DeviceID); err != nil || d.DisplayName != ok {
			t.Fatalf("after unicode rename: %+v %v", d, err)
		}
		r := testserver.Send(t, nil, "PUT", url, alice.AccessToken, map[string]any{"display_name": strings.Repeat("x", 101)})
		wireErr(t, "name too long", r, http.StatusBadRequest, "M_TOO_LARGE")
		wireErr(t, "name not a string", testserver.Send(t, nil, "PUT", url, alice.AccessToken, `{"display_name": 5}`), http.StatusBadRequest, "M_BAD_JSON")

		err := alice.SetDeviceInfo(ctx, "NOSUCHDEVICE", &mautrix.ReqDeviceInfo{DisplayName: "x"})
		if !errors.Is(err, mautrix.MNotFound) {
			t.Fatalf("rename unknown: %v, want M_NOT_FOUND", err)
		}
		r = testserver.Send(t, nil, "PUT", s.URL+"/_matrix/client/v3/devices/NOSUCHDEVICE", alice.AccessToken, "{}")
		wireErr(t, "empty update of unknown device", r, http.StatusNotFound, "M_NOT_FOUND")
		err = alice.SetDeviceInfo(ctx, bob.DeviceID, &mautrix.ReqDeviceInfo{DisplayName: "mine now"})
		if !errors.Is(err, mautrix.MNotFound) {
			t.Fatalf("rename bob's device: %v, want M_NOT_FOUND", err)
		}
		if d, err := bob.GetDeviceInfo(ctx, bob.DeviceID); err != nil || d.DisplayName == "mine now" {
			t.Fatalf("bob's device renamed by alice: %+v %v", d, err)
		}
	})
}

// TestDeviceDeleteUIA checks DELETE /devices/{deviceId}: the UIA
// challenge, a wrong password, success, and the token dying with it.
func TestDeviceDeleteUIA(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw-alice")
		laptop := devLogin(t, s, "alice", "pw-alice", "laptop")
		bob := s.Register("bob", "pw-bob")
		url := s.URL + "/_matrix/client/v3/devices/" + laptop.DeviceID.String()

		session := devChallenge(t, "no auth", testserver.Send(t, nil, "DELETE", url, alice.AccessToken, nil))
		if _, has := testserver.Send(t, nil, "DELETE", url, alice.AccessToken, "{}").JSON["errcode"]; has {
			t.Fatalf("the first challenge carries no errcode")
		}

		// A wrong password: 401 M_FORBIDDEN with the challenge again.
		r := testserver.Send(t, nil, "DELETE", url, alice.AccessToken, map[string]any{"auth": devPasswordAuth("alice", "wrong", session)})
		if r.Status != http.StatusUnauthorized || r.JSON["errcode"] != "M_FORBIDDEN" || r.JSON["session"] != session {
			t.Fatalf("wrong password: %d %s", r.Status, r.Raw)
		}
		// Another user's password is refused outright, 403 with no new
		// challenge, as Synapse answers.
		r = testserver.Send(t, nil, "DELETE", url, alice.AccessToken, map[string]any{"auth": devPasswordAuth("bob", "pw-bob", session)})
		wireErr(t, "bob's password", r, http.StatusForbidden, "M_FORBIDDEN")
		if _, has := r.JSON["flows"]; has {
			t.Fatalf("a refusal carries no challenge: %s", r.Raw)
		}
		if ids := devIDs(t, alice); len(ids) != 2 {
			t.Fatalf("devices after failed deletes: %v", ids)
		}

		session = devChallenge(t, "fresh challenge", testserver.Send(t, nil, "DELETE", url, alice.AccessToken, "{}"))
		r = testserver.Send(t, nil, "DELETE", url, alice.AccessToken, map[string]any{"auth": devPasswordAuth("alice", "pw-alice", session)})
		wireOK(t, "delete", r)
		devTokenDead(t, "deleted device", laptop)
		if ids := devIDs(t, alice); !slices.Equal(ids, []string{alice.DeviceID.String()}) {
			t.Fatalf("devices after delete: %v", ids)
		}
		if _, err := alice.GetDeviceInfo(context.Background(), laptop.DeviceID); !errors.Is(err, mautrix.MNotFound) {
			t.Fatalf("deleted device: %v, want M_NOT_FOUND", err)
		}

		// Unknown devices and other users' devices are 404.
		r = testserver.Send(t, nil, "DELETE", s.URL+"/_matrix/client/v3/devices/NOSUCHDEVICE", alice.AccessToken, "{}")
		wireErr(t, "delete unknown", r, http.StatusNotFound, "M_NOT_FOUND")
		r = testserver.Send(t, nil, "DELETE", s.URL+"/_matrix/client/v3/devices/"+bob.DeviceID.String(), alice.AccessToken, "{}")
		wireErr(t, "delete bob's", r, http.StatusNotFound, "M_NOT_FOUND")
		if _, err := bob.Whoami(context.Background()); err != nil {
			t.Fatalf("bob: %v", err)
		}

		// Through mautrix, in one round with the deprecated "user" field.
		tablet := devLogin(t, s, "alice", "pw-alice", "tablet")
		err := alice.DeleteDevice(context.Background(), tablet.DeviceID, &mautrix.ReqDeleteDevice[any]{
			Auth: mautrix.ReqUIAuthLogin{
				BaseAuthData: mautrix.BaseAuthData{Type: mautrix.AuthTypePassword},
				User:         "alice", Password: "pw-alice",
			},
		})
		if err != nil {
			t.Fatalf("mautrix delete: %v", err)
		}
		devTokenDead(t, "tablet", tablet)
		// A device may delete itself.
		self := testserver.Send(t, nil, "DELETE", s.URL+"/_matrix/client/v3/devices/"+alice.DeviceID.String(), alice.AccessToken, map[string]any{
			"auth": devPasswordAuth("alice", "pw-alice", ""),
		})
		wireOK(t, "delete own device", self)
		devTokenDead(t, "self-deleted device", alice)
	})
}

// TestDeleteDevicesUIA checks POST /delete_devices.
func TestDeleteDevicesUIA(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw-alice")
		d2 := devLogin(t, s, "alice", "pw-alice", "two")
		d3 := devLogin(t, s, "alice", "pw-alice", "three")
		d4 := devLogin(t, s, "alice", "pw-alice", "four")
		bob := s.Register("bob", "pw-bob")
		url := s.URL + "/_matrix/client/v3/delete_devices"

		wireErr(t, "missing devices", testserver.Send(t, nil, "POST", url, alice.AccessToken, "{}"), http.StatusBadRequest, "M_MISSING_PARAM")
		wireErr(t, "devices not a list", testserver.Send(t, nil, "POST", url, alice.AccessToken, `{"devices": "x"}`), http.StatusBadRequest, "M_BAD_JSON")

		// Unknown IDs and another user's device are ignored, as the spec allows.
		body := map[string]any{"devices": []string{d2.DeviceID.String(), d3.DeviceID.String(), "NOSUCHDEVICE", bob.DeviceID.String()}}
		session := devChallenge(t, "delete_devices", testserver.Send(t, nil, "POST", url, alice.AccessToken, body))
		if ids := devIDs(t, alice); len(ids) != 4 {
			t.Fatalf("the challenge deleted something: %v", ids)
		}
		body["auth"] = devPasswordAuth("alice", "pw-alice", session)
		wireOK(t, "delete_devices", testserver.Send(t, nil, "POST", url, alice.AccessToken, body))
		devTokenDead(t, "d2", d2)
		devTokenDead(t, "d3", d3)
		want := []string{alice.DeviceID.String(), d4.DeviceID.String()}
		slices.Sort(want)
		if ids := devIDs(t, alice); !slices.Equal(ids, want) {
			t.Fatalf("devices: %v, want %v", ids, want)
		}
		if _, err := d4.Whoami(ctx); err != nil {
			t.Fatalf("d4 should survive: %v", err)
		}
		if _, err := bob.Whoami(ctx); err != nil {
			t.Fatalf("bob's device should survive: %v", err)
		}

		// The session authenticated that one operation only.
		body = map[string]any{"devices": []string{d4.DeviceID.String()}, "auth": map[string]any{"session": session}}
		if r := testserver.Send(t, nil, "POST", url, alice.AccessToken, body); r.Status == http.StatusOK {
			t.Fatalf("a finished UIA session was reused: %s", r.Raw)
		}

		// Through mautrix.
		err := alice.DeleteDevices(ctx, &mautrix.ReqDeleteDevices[any]{
			Devices: []id.DeviceID{d4.DeviceID},
			Auth:    devPasswordAuth("alice", "pw-alice", ""),
		})
		if err != nil {
			t.Fatalf("mautrix delete_devices: %v", err)
		}
		devTokenDead(t, "d4", d4)
		if ids := devIDs(t, alice); !slices.Equal(ids, []string{alice.DeviceID.String()}) {
			t.Fatalf("devices: %v", ids)
		}
		// An empty list still needs UIA, then succeeds.
		devChallenge(t, "empty list", testserver.Send(t, nil, "POST", url, alice.AccessToken, `{"devices": []}`))
	})
}
