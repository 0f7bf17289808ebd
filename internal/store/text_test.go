package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/myelin-chat/myelin/internal/ident"
	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// TestTextBothEngines: the store answers alike on both engines for
// strings PostgreSQL cannot hold. Identifiers are refused (ErrNotText,
// which SQLite would have stored and PostgreSQL failed on); free text is
// stored without its NUL and with U+FFFD for bytes that are not UTF-8.
func TestTextBothEngines(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, url string) {
		ctx := context.Background()
		db := open(t, url)
		if err := db.CreateUser(ctx, store.User{Localpart: "alice", UserID: "@alice:test", PasswordHash: "h", CreatedTS: 1}); err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{"a\x00b", "a\xffb", "a\xc0\x80"} {
			if _, err := db.GetUser(ctx, bad); !errors.Is(err, ident.ErrNotText) {
				t.Errorf("GetUser(%q): %v, want ErrNotText", bad, err)
			}
			if _, err := db.GetDevice(ctx, "alice", bad); !errors.Is(err, ident.ErrNotText) {
				t.Errorf("GetDevice(%q): %v, want ErrNotText", bad, err)
			}
			if err := db.CreateSession(ctx, store.NewSession{Localpart: "alice", DeviceID: bad, AccessHash: "x" + bad, NowTS: 1}); !errors.Is(err, ident.ErrNotText) {
				t.Errorf("CreateSession(device %q): %v, want ErrNotText", bad, err)
			}
		}
		name := "ph\x00one\xff"
		if err := db.CreateSession(ctx, store.NewSession{Localpart: "alice", DeviceID: "D1", DisplayName: &name, AccessHash: "a1", NowTS: 5}); err != nil {
			t.Fatal(err)
		}
		d, err := db.GetDevice(ctx, "alice", "D1")
		if err != nil || d.DisplayName == nil || *d.DisplayName != "phone\uFFFD" {
			t.Fatalf("device: %+v %v", d, err)
		}
		renamed := "\x00tablet"
		if err := db.SetDeviceDisplayName(ctx, "alice", "D1", &renamed); err != nil {
			t.Fatal(err)
		}
		if d, err = db.GetDevice(ctx, "alice", "D1"); err != nil || *d.DisplayName != "tablet" {
			t.Fatalf("renamed device: %+v %v", d, err)
		}
		msg := "busy\x00"
		if err := db.PutPresence(ctx, store.Presence{UserID: "@alice:test", Presence: "online", StatusMsg: &msg, StreamPos: 1}); err != nil {
			t.Fatal(err)
		}
	})
}
