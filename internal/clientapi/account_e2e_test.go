package clientapi_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testserver"
)

const authPasswordPath = "/_matrix/client/v3/account/password"

// authLoginDevice logs in with a password on a new device and returns
// its access token and device ID.
func authLoginDevice(t *testing.T, s *testserver.Server, user, password string) (token, device string) {
	t.Helper()
	status, body := s.Do(t, http.MethodPost, "/_matrix/client/v3/login", "", authPasswordLogin(user, password))
	if status != http.StatusOK {
		t.Fatalf("login %s: %d %v", user, status, body)
	}
	token, _ = body["access_token"].(string)
	device, _ = body["device_id"].(string)
	return token, device
}

// authDeviceIDs lists the device IDs the token's user has.
func authDeviceIDs(t *testing.T, s *testserver.Server, token string) []string {
	t.Helper()
	status, body := s.Do(t, http.MethodGet, "/_matrix/client/v3/devices", token, nil)
	if status != http.StatusOK {
		t.Fatalf("devices: %d %v", status, body)
	}
	list, _ := body["devices"].([]any)
	var ids []string
	for _, d := range list {
		m, _ := d.(map[string]any)
		id, _ := m["device_id"].(string)
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// authCanLogin reports whether a password login succeeds, failing the
// test on anything but success or 403 M_FORBIDDEN.
func authCanLogin(t *testing.T, s *testserver.Server, user, password string) bool {
	t.Helper()
	status, body := s.Do(t, http.MethodPost, "/_matrix/client/v3/login", "", authPasswordLogin(user, password))
	if status == http.StatusOK {
		return true
	}
	testserver.WantError(t, "login of "+user, status, body, http.StatusForbidden, "M_FORBIDDEN")
	return false
}

func TestWhoami(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "alice password")
		who, err := alice.Whoami(context.Background())
		if err != nil || who.UserID.String() != s.UserID("alice") || who.DeviceID != alice.DeviceID {
			t.Fatalf("mautrix whoami: %+v %v", who, err)
		}
		status, body := authWhoami(t, s, alice.AccessToken)
		if status != http.StatusOK || body["user_id"] != s.UserID("alice") || body["device_id"] != alice.DeviceID.String() {
			t.Fatalf("whoami: %d %v", status, body)
		}
		if guest, ok := body["is_guest"]; !ok || guest != false {
			t.Fatalf("whoami: is_guest %v (present %v), want false", guest, ok)
		}

		status, body = authWhoami(t, s, "")
		testserver.WantError(t, "whoami without token", status, body, http.StatusUnauthorized, "M_MISSING_TOKEN")
		authWantRevoked(t, s, "bogus token", "myl_bogus", false)

		// The access_token query parameter, on both prefixes.
		for _, prefix := range []string{"v3", "r0"} {
			path := "/_matrix/client/" + prefix + "/account/whoami?access_token=" + url.QueryEscape(alice.AccessToken)
			status, body = s.Do(t, http.MethodGet, path, "", nil)
			if status != http.StatusOK || body["user_id"] != s.UserID("alice") || body["device_id"] != alice.DeviceID.String() {
				t.Fatalf("%s whoami with access_token parameter: %d %v", prefix, status, body)
			}
		}
		status, body = s.Do(t, http.MethodGet, "/_matrix/client/v3/account/whoami?access_token=myl_bogus", "", nil)
		testserver.WantError(t, "bogus access_token parameter", status, body, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
	})
}

func TestChangePassword(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "old password")
		tokenB, deviceB := authLoginDevice(t, s, "alice", "old password")
		tokenC, _ := authLoginDevice(t, s, "alice", "old password")
		bob := s.Register("bob", "bob password")
		newPassword := map[string]any{"new_password": "new password"}

		status, body := s.Do(t, http.MethodPost, authPasswordPath, "", newPassword)
		testserver.WantError(t, "password change without access token", status, body, http.StatusUnauthorized, "M_MISSING_TOKEN")

		session := authChallenge(t, s, http.MethodPost, authPasswordPath, alice.AccessToken, newPassword)
		if !authCanLogin(t, s, "alice", "old password") {
			t.Fatalf("the challenge alone changed the password")
		}

		// A wrong password: 401 with M_FORBIDDEN, same session, flows again.
		status, body = s.Do(t, http.MethodPost, authPasswordPath, alice.AccessToken, map[string]any{
			"new_password": "new password", "auth": authUIAPassword(session, "alice", "wrong password"),
		})
		testserver.WantError(t, "wrong UIA password", status, body, http.StatusUnauthorized, "M_FORBIDDEN")
		if body["session"] != session {
			t.Fatalf("wrong UIA password: session %v, want %s", body["session"], session)
		}
		if len(authFlows(t, body)) != 1 {
			t.Fatalf("wrong UIA password: no flows in %v", body)
		}
		if !authCanLogin(t, s, "alice", "old password") {
			t.Fatalf("a failed stage changed the password")
		}

		// An unsupported stage type is refused within the session too.
		status, body = s.Do(t, http.MethodPost, authPasswordPath, alice.AccessToken, map[string]any{
			"new_password": "new password", "auth": map[string]any{"type": "m.login.dummy", "session": session},
		})
		if status != http.StatusUnauthorized || body["errcode"] == nil || body["session"] != session {
			t.Fatalf("dummy stage: %d %v, want a 401 challenge with an errcode", status, body)
		}

		// The right password.
		status, body = s.Do(t, http.MethodPost, authPasswordPath, alice.AccessToken, map[string]any{
			"new_password": "new password", "auth": authUIAPassword(session, "alice", "old password"),
		})
		if status != http.StatusOK || len(body) != 0 {
			t.Fatalf("password change: %d %v, want 200 {}", status, body)
		}
		if authCanLogin(t, s, "alice", "old password") {
			t.Fatalf("the old password still logs in")
		}
		tokenD, deviceD := authLoginDevice(t, s, "alice", "new password")

		// Other devices were logged out, the requesting one stays.
		authWantToken(t, s, "requesting device", alice.AccessToken, s.UserID("alice"))
		authWantRevoked(t, s, "second device", tokenB, false)
		authWantRevoked(t, s, "third device", tokenC, false)
		want := []string{alice.DeviceID.String(), deviceD}
		slices.Sort(want)
		if got := authDeviceIDs(t, s, alice.AccessToken); !slices.Equal(got, want) {
			t.Fatalf("devices after the change: %v, want %v", got, want)
		}
		if slices.Contains(want, deviceB) {
			t.Fatalf("device IDs collide")
		}
		authWantToken(t, s, "other user", bob.AccessToken, s.UserID("bob"))

		// The finished session cannot change the password again.
		status, body = s.Do(t, http.MethodPost, authPasswordPath, alice.AccessToken, map[string]any{
			"new_password": "third password", "auth": map[string]any{"session": session},
		})
		if status == http.StatusOK {
			t.Fatalf("a finished UIA session was accepted again: %v", body)
		}
		if !authCanLogin(t, s, "alice", "new password") {
			t.Fatalf("a refused request changed the password")
		}

		// logout_devices: false keeps the other devices. This time the
		// user is named by full user ID, and the new password is long
		// (over bcrypt's 72 bytes).
		long := strings.Repeat("correct horse battery staple ", 4) // 116 bytes
		session = authChallenge(t, s, http.MethodPost, authPasswordPath, tokenD, map[string]any{"new_password": long, "logout_devices": false})
		status, body = s.Do(t, http.MethodPost, authPasswordPath, tokenD, map[string]any{
			"new_password": long, "logout_devices": false, "auth": authUIAPassword(session, s.UserID("alice"), "new password"),
		})
		if status != http.StatusOK {
			t.Fatalf("password change keeping devices: %d %v", status, body)
		}
		authWantToken(t, s, "device kept (registration)", alice.AccessToken, s.UserID("alice"))
		authWantToken(t, s, "device kept (requester)", tokenD, s.UserID("alice"))
		if authCanLogin(t, s, "alice", "new password") {
			t.Fatalf("the replaced password still logs in")
		}
		if !authCanLogin(t, s, "alice", long) {
			t.Fatalf("the long password does not log in")
		}
		if authCanLogin(t, s, "alice", long[:72]) || authCanLogin(t, s, "alice", long[:len(long)-1]) {
			t.Fatalf("a prefix of the long password logs in")
		}

		// Parameter checks.
		status, body = s.Do(t, http.MethodPost, authPasswordPath, tokenD, map[string]any{"new_password": strings.Repeat("x", 513)})
		testserver.WantError(t, "overlong new password", status, body, http.StatusBadRequest, "M_WEAK_PASSWORD")
		session = authChallenge(t, s, http.MethodPost, authPasswordPath, tokenD, map[string]any{})
		status, body = s.Do(t, http.MethodPost, authPasswordPath, tokenD, map[string]any{"auth": authUIAPassword(session, "alice", long)})
		testserver.WantError(t, "missing new_password", status, body, http.StatusBadRequest, "M_MISSING_PARAM")
		status, body = s.Do(t, http.MethodPost, authPasswordPath, tokenD, `{"new_password": `)
		testserver.WantError(t, "malformed body", status, body, http.StatusBadRequest, "M_NOT_JSON")
		if !authCanLogin(t, s, "alice", long) {
			t.Fatalf("a refused request changed the password")
		}
	})
}

func TestChangePasswordUIAForAnotherUser(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "alice password")
		bob := s.Register("bob", "bob password")

		// Bob knows Alice's password and names her in his own UIA.
		session := authChallenge(t, s, http.MethodPost, authPasswordPath, bob.AccessToken, map[string]any{"new_password": "hijacked"})
		for _, user := range []string{"alice", s.UserID("alice"), "ALICE"} {
			status, body := s.Do(t, http.MethodPost, authPasswordPath, bob.AccessToken, map[string]any{
				"new_password": "hijacked", "auth": authUIAPassword(session, user, "alice password"),
			})
			if status == http.StatusOK || body["errcode"] != "M_FORBIDDEN" {
				t.Fatalf("UIA as %s for bob's request: %d %v, want M_FORBIDDEN", user, status, body)
			}
		}
		// A user of another server, too.
		status, body := s.Do(t, http.MethodPost, authPasswordPath, bob.AccessToken, map[string]any{
			"new_password": "hijacked", "auth": authUIAPassword(session, "@bob:other.test", "bob password"),
		})
		if status == http.StatusOK || body["errcode"] != "M_FORBIDDEN" {
			t.Fatalf("UIA as a remote user: %d %v, want M_FORBIDDEN", status, body)
		}

		// Bob cannot continue a session that Alice started either.
		aliceSession := authChallenge(t, s, http.MethodPost, authPasswordPath, alice.AccessToken, map[string]any{"new_password": "hijacked"})
		status, body = s.Do(t, http.MethodPost, authPasswordPath, bob.AccessToken, map[string]any{
			"new_password": "hijacked", "auth": authUIAPassword(aliceSession, "bob", "bob password"),
		})
		testserver.WantError(t, "someone else's UIA session", status, body, http.StatusForbidden, "M_FORBIDDEN")

		for _, u := range []struct{ user, password string }{{"alice", "alice password"}, {"bob", "bob password"}} {
			if !authCanLogin(t, s, u.user, u.password) {
				t.Fatalf("%s's password changed", u.user)
			}
		}
		if authCanLogin(t, s, "alice", "hijacked") || authCanLogin(t, s, "bob", "hijacked") {
			t.Fatalf("the hijacking password logs in")
		}
		authWantToken(t, s, "alice", alice.AccessToken, s.UserID("alice"))
	})
}

func TestUIASessionBoundToOperation(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "alice password")
		_, deviceB := authLoginDevice(t, s, "alice", "alice password")
		devicePath := "/_matrix/client/v3/devices/" + deviceB

		session := authChallenge(t, s, http.MethodPost, authPasswordPath, alice.AccessToken, map[string]any{"new_password": "new password"})
		status, body := s.Do(t, http.MethodDelete, devicePath, alice.AccessToken, map[string]any{
			"auth": authUIAPassword(session, "alice", "alice password"),
		})
		testserver.WantError(t, "password-change session reused for DELETE /devices", status, body, http.StatusForbidden, "M_FORBIDDEN")
		status, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/delete_devices", alice.AccessToken, map[string]any{
			"devices": []string{deviceB}, "auth": authUIAPassword(session, "alice", "alice password"),
		})
		testserver.WantError(t, "password-change session reused for /delete_devices", status, body, http.StatusForbidden, "M_FORBIDDEN")
		// The same path under the other prefix is another operation too.
		status, body = s.Do(t, http.MethodPost, "/_matrix/client/r0/account/password", alice.AccessToken, map[string]any{
			"new_password": "new password", "auth": authUIAPassword(session, "alice", "alice password"),
		})
		if status == http.StatusOK {
			t.Fatalf("v3 session accepted on r0: %v", body)
		}
		if !slices.Contains(authDeviceIDs(t, s, alice.AccessToken), deviceB) {
			t.Fatalf("device %s was deleted", deviceB)
		}
		if !authCanLogin(t, s, "alice", "alice password") {
			t.Fatalf("password changed")
		}

		// A session of its own deletes the device.
		deleteSession := authChallenge(t, s, http.MethodDelete, devicePath, alice.AccessToken, nil)
		status, body = s.Do(t, http.MethodDelete, devicePath, alice.AccessToken, map[string]any{
			"auth": authUIAPassword(deleteSession, "alice", "alice password"),
		})
		if status != http.StatusOK {
			t.Fatalf("delete device: %d %v", status, body)
		}
		if slices.Contains(authDeviceIDs(t, s, alice.AccessToken), deviceB) {
			t.Fatalf("device %s survived its deletion", deviceB)
		}
		// And the password-change session still works for its own operation.
		status, body = s.Do(t, http.MethodPost, authPasswordPath, alice.AccessToken, map[string]any{
			"new_password": "new password", "auth": authUIAPassword(session, "alice", "alice password"),
		})
		if status != http.StatusOK {
			t.Fatalf("password change with its own session: %d %v", status, body)
		}
	})
}

func TestDeactivate(t *testing.T) {
	const deactivatePath = "/_matrix/client/v3/account/deactivate"
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		bob := s.Register("bob", "bob password")
		if err := bob.SetDisplayName(ctx, "Bob"); err != nil {
			t.Fatalf("bob displayname: %v", err)
		}
		for _, erase := range []bool{false, true} {
			name := "keeper"
			if erase {
				name = "eraser"
			}
			t.Run(name, func(t *testing.T) {
				user := s.Register(name, "pw "+name)
				if err := user.SetDisplayName(ctx, "Display "+name); err != nil {
					t.Fatalf("displayname: %v", err)
				}
				// A room the user is in and one they are invited to.
				joined, err := bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := user.JoinRoom(ctx, joined.RoomID.String(), nil); err != nil {
					t.Fatal(err)
				}
				invited, err := bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Invite: []id.UserID{user.UserID}})
				if err != nil {
					t.Fatal(err)
				}
				otherToken, _ := authLoginDevice(t, s, name, "pw "+name)
				refreshable := authPasswordLogin(name, "pw "+name)
				refreshable["refresh_token"] = true
				status, body := s.Do(t, http.MethodPost, "/_matrix/client/v3/login", "", refreshable)
				if status != http.StatusOK {
					t.Fatalf("refreshable login: %d %v", status, body)
				}
				_, refresh := authPair(t, "refreshable login", body, s.Config.Auth.RefreshableAccessTokenLifetime)
				loginToken, _ := authGetLoginToken(t, s, otherToken, name, "pw "+name)

				session := authChallenge(t, s, http.MethodPost, deactivatePath, user.AccessToken, nil)
				status, body = s.Do(t, http.MethodPost, deactivatePath, user.AccessToken, map[string]any{
					"erase": erase, "auth": authUIAPassword(session, name, "wrong"),
				})
				testserver.WantError(t, "deactivation with a wrong password", status, body, http.StatusUnauthorized, "M_FORBIDDEN")
				status, body = s.Do(t, http.MethodPost, deactivatePath, user.AccessToken, map[string]any{
					"erase": erase, "auth": authUIAPassword(session, "bob", "bob password"),
				})
				if status == http.StatusOK || body["errcode"] != "M_FORBIDDEN" {
					t.Fatalf("deactivation authenticated as bob: %d %v, want M_FORBIDDEN", status, body)
				}
				authWantToken(t, s, "after refused deactivations", user.AccessToken, s.UserID(name))

				status, body = s.Do(t, http.MethodPost, deactivatePath, user.AccessToken, map[string]any{
					"erase": erase, "auth": authUIAPassword(session, name, "pw "+name),
				})
				if status != http.StatusOK {
					t.Fatalf("deactivate: %d %v", status, body)
				}
				if r, ok := body["id_server_unbind_result"].(string); !ok || (r != "success" && r != "no-support") {
					t.Fatalf("deactivate: id_server_unbind_result %v, want success or no-support", body["id_server_unbind_result"])
				}

				// Synapse parts a deactivated account from its rooms.
				for _, room := range []id.RoomID{joined.RoomID, invited.RoomID} {
					if m, err := s.Engine().MembershipOf(ctx, string(room), string(user.UserID)); err != nil || m != "leave" {
						t.Fatalf("membership in %s after deactivation: %q %v, want leave", room, m, err)
					}
				}

				authWantRevoked(t, s, "token of the deactivating device", user.AccessToken, false)
				authWantRevoked(t, s, "token of another device", otherToken, false)
				status, body = authRefresh(t, s, refresh)
				testserver.WantError(t, "refresh token of a deactivated account", status, body, http.StatusUnauthorized, "M_UNKNOWN_TOKEN")
				status, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/login", "", map[string]any{"type": "m.login.token", "token": loginToken})
				if status != http.StatusForbidden {
					t.Fatalf("login token of a deactivated account: %d %v, want 403", status, body)
				}
				status, body = s.Do(t, http.MethodPost, "/_matrix/client/v3/login", "", authPasswordLogin(name, "pw "+name))
				testserver.WantError(t, "password login of a deactivated account", status, body, http.StatusForbidden, "M_USER_DEACTIVATED")

				// The user ID is never handed out again.
				_, err = s.Client().RegisterAvailable(ctx, name)
				if !errors.Is(err, mautrix.MUserInUse) {
					t.Fatalf("register/available %s: %v, want M_USER_IN_USE", name, err)
				}
				status, body = s.Do(t, http.MethodGet, "/_matrix/client/v3/register/available?username="+name, "", nil)
				testserver.WantError(t, "register/available", status, body, http.StatusBadRequest, "M_USER_IN_USE")
				_, err = s.Client().RegisterDummy(ctx, &mautrix.ReqRegister[any]{Username: name, Password: "new owner"})
				if !errors.Is(err, mautrix.MUserInUse) {
					t.Fatalf("register %s again: %v, want M_USER_IN_USE", name, err)
				}

				status, body = s.Do(t, http.MethodGet, "/_matrix/client/v3/profile/"+url.PathEscape(s.UserID(name))+"/displayname", "", nil)
				if erase {
					if status == http.StatusOK && body["displayname"] != nil && body["displayname"] != "" {
						t.Fatalf("erased account still shows displayname %v", body["displayname"])
					}
				} else if status != http.StatusOK || body["displayname"] != "Display "+name {
					t.Fatalf("kept profile: %d %v, want displayname %q", status, body, "Display "+name)
				}

				// Bystanders are untouched.
				authWantToken(t, s, "bob", bob.AccessToken, s.UserID("bob"))
				p, err := s.Client().GetDisplayName(ctx, bob.UserID)
				if err != nil || p.DisplayName != "Bob" {
					t.Fatalf("bob's displayname: %+v %v", p, err)
				}
			})
		}

		// Deactivation without UIA is a challenge, not a deactivation, and
		// needs an access token.
		status, body := s.Do(t, http.MethodPost, deactivatePath, "", map[string]any{})
		testserver.WantError(t, "deactivate without token", status, body, http.StatusUnauthorized, "M_MISSING_TOKEN")
		authChallenge(t, s, http.MethodPost, deactivatePath, bob.AccessToken, map[string]any{"erase": true})
		authWantToken(t, s, "bob after a bare deactivation request", bob.AccessToken, s.UserID("bob"))
	})
}
