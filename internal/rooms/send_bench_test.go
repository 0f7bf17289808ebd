package rooms

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// BenchmarkSendMessage sends messages with transaction IDs into one room
// through the engine, as PUT /send does (SQLite): run with -benchmem for
// the engine's allocations per event, HTTP and the listeners aside.
func BenchmarkSendMessage(b *testing.B) {
	ctx := context.Background()
	db, err := store.Open(ctx, testdb.NewURL(b, "sqlite"), 4)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	stream, err := OpenStream(ctx, db, nil)
	if err != nil {
		b.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(nil)
	e := New(db, stream, bus.New(), Options{ServerName: "a.test", KeyID: "ed25519:a", PrivateKey: priv, DefaultVersion: "10"})
	roomID, err := e.CreateRoom(ctx, CreateRequest{Creator: "@alice:a.test", Preset: "public_chat"})
	if err != nil {
		b.Fatal(err)
	}
	content := []byte(`{"msgtype":"m.text","body":"a benchmark message of an ordinary length, about like this"}`)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := e.Send(ctx, SendRequest{RoomID: roomID, Sender: "@alice:a.test", Type: "m.room.message",
			Content: json.RawMessage(content), Txn: &Txn{Localpart: "alice", Device: "D", Scope: "send/m.room.message", ID: fmt.Sprint("t", i)}}); err != nil {
			b.Fatal(err)
		}
	}
}
