package appservice_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"

	"maunium.net/go/mautrix"
	mas "maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testdb"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestAppServiceHungServiceBlocksNoOther: a service that takes
// connections and never answers (the worst kind of down) holds up
// neither the room engine (users still send) nor another service, which
// gets the room's events in order meanwhile; once the hung service is
// back it gets them too, in order (issue 19 item 2).
func TestAppServiceHungServiceBlocksNoOther(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		hung := newBridge(t, "hs1.test")
		other := newBridge(t, "hs1.test")
		reg := other.as.Registration
		reg.ID, reg.AppToken, reg.ServerToken, reg.SenderLocalpart = "otherbridge", reg.AppToken+"_other", reg.ServerToken+"_other", "otherbot"
		reg.Namespaces = mas.Namespaces{UserIDs: mas.NamespaceList{{Regex: `@other_.*:hs1\.test`, Exclusive: true}}}
		if err := reg.Save(other.path); err != nil {
			t.Fatal(err)
		}
		s := testserver.Start(t, dbURL, func(c *config.Config) { c.AppServices.Files = []string{hung.path, other.path} })
		hung.start(s.URL)
		other.start(s.URL)

		alice := s.Register("alice", "password")
		room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range []*mas.IntentAPI{hung.as.Intent(id.UserID(s.UserID("puppet_1"))), other.as.Intent(id.UserID(s.UserID("other_1")))} {
			if err := in.EnsureJoined(ctx, room.RoomID); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := alice.SendText(ctx, room.RoomID, "before"); err != nil {
			t.Fatal(err)
		}
		if got := hung.messages(room.RoomID, 1); got[0] != "before" {
			t.Fatalf("hung bridge before: %q", got)
		}
		if got := other.messages(room.RoomID, 1); got[0] != "before" {
			t.Fatalf("other bridge before: %q", got)
		}

		// The first bridge hangs: its port takes connections, never answers.
		hung.stop()
		l, err := net.Listen("tcp", strings.TrimPrefix(hung.as.Registration.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var held []net.Conn
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				held = append(held, c)
				mu.Unlock()
			}
		}()
		want := []string{"while hung 1", "while hung 2", "while hung 3"}
		for _, m := range want {
			if _, err := alice.SendText(ctx, room.RoomID, m); err != nil {
				t.Fatalf("sending while a service hangs: %v", err)
			}
		}
		if got := other.messages(room.RoomID, len(want)); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("other bridge while the first hangs: %q, want %q", got, want)
		}

		// The hung bridge comes back: everything, in order.
		l.Close()
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
		hung.start(s.URL)
		if got := hung.messages(room.RoomID, len(want)); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("hung bridge once back: %q, want %q", got, want)
		}
	})
}
