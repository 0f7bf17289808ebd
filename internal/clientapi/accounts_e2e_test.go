package clientapi_test

import (
	"context"
	"errors"
	"testing"

	"maunium.net/go/mautrix"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestAccountLifecycle drives the basic life of an account through a real
// client: register, whoami, login on a second device, list devices,
// profile, logout.
func TestAccountLifecycle(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "correct horse")
		who, err := alice.Whoami(ctx)
		if err != nil || who.UserID.String() != s.UserID("alice") || who.DeviceID != alice.DeviceID {
			t.Fatalf("whoami: %+v %v", who, err)
		}

		second := s.Client()
		login, err := second.Login(ctx, &mautrix.ReqLogin{
			Type:                     mautrix.AuthTypePassword,
			Identifier:               mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "alice"},
			Password:                 "correct horse",
			InitialDeviceDisplayName: "laptop",
			StoreCredentials:         true,
		})
		if err != nil {
			t.Fatalf("login: %v", err)
		}
		devices, err := alice.GetDevicesInfo(ctx)
		if err != nil || len(devices.Devices) != 2 {
			t.Fatalf("devices: %+v %v", devices, err)
		}
		d, err := alice.GetDeviceInfo(ctx, login.DeviceID)
		if err != nil || d.DisplayName != "laptop" {
			t.Fatalf("device: %+v %v", d, err)
		}

		if err := second.SetDisplayName(ctx, "Alice"); err != nil {
			t.Fatalf("set displayname: %v", err)
		}
		p, err := s.Client().GetProfile(ctx, who.UserID)
		if err != nil || p.DisplayName != "Alice" {
			t.Fatalf("profile: %+v %v", p, err)
		}

		if _, err := second.Logout(ctx); err != nil {
			t.Fatalf("logout: %v", err)
		}
		second.AccessToken = login.AccessToken
		if _, err := second.Whoami(ctx); !errors.Is(err, mautrix.MUnknownToken) {
			t.Fatalf("whoami after logout: %v, want M_UNKNOWN_TOKEN", err)
		}
		devices, err = alice.GetDevicesInfo(ctx)
		if err != nil || len(devices.Devices) != 1 {
			t.Fatalf("devices after logout: %+v %v", devices, err)
		}
	})
}
