package appservice

import (
	"context"
	"log/slog"
	"testing"

	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/roomtest"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// TestFirstPositionIsStartUp: a service seen for the first time starts
// at the stream's end when the server was built, not when its worker
// first ran. The workers are goroutines: on a loaded machine the first
// requests (a room, an invite of a puppet) came before, and their events
// never reached the bridge (appservice's TestAppServiceBridge, "bridge
// never received the puppet's invite").
func TestFirstPositionIsStartUp(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx := context.Background()
		env := roomtest.New(t, dbURL, "10")
		db, stream, engine := env.DB, env.Stream, env.Engine
		reg := &Registration{ID: "bridge", URL: "http://127.0.0.1:9", ReceiveEphemeral: true}
		registry := NewRegistry(roomtest.ServerName, []*Registration{reg})
		sender := NewSender(SenderOptions{Registry: registry, Rooms: engine, Store: db})
		ephemeral := NewEphemeral(EphemeralOptions{Registry: registry, Store: db, Stream: stream})
		built := stream.Current()

		if _, err := engine.CreateRoom(ctx, rooms.CreateRequest{Creator: "@alice:" + roomtest.ServerName, Preset: "public_chat"}); err != nil {
			t.Fatal(err)
		}
		if stream.Current() == built {
			t.Fatal("the stream did not move")
		}
		if pos, ok := sender.start(ctx, reg, slog.Default()); !ok || pos != built {
			t.Errorf("events: a new service starts at %d (%v), want %d, the end when the server was built", pos, ok, built)
		}
		if pos, ok := ephemeral.start(ctx, reg, slog.Default()); !ok || pos != built {
			t.Errorf("ephemeral: a new service starts at %d (%v), want %d, the end when the server was built", pos, ok, built)
		}
		// Once recorded, the position is the service's own.
		if pos, ok := sender.start(ctx, reg, slog.Default()); !ok || pos != built {
			t.Errorf("events: the recorded position reads back as %d (%v), want %d", pos, ok, built)
		}
	})
}
