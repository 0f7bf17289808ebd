// Package roomtest builds a room engine over a fresh store, for the tests
// of the services that sit above the engine (membership, aliases,
// directory, receipts, ...). The engine's own tests cannot use it: rooms
// is below this package.
package roomtest

import (
	"context"
	"crypto/ed25519"
	"testing"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
	// Databases copied from one migrated once, not migrated per test.
	_ "github.com/myelin-chat/myelin/internal/testdb/migrated"
)

// ServerName is the name of the server the engine acts for.
const ServerName = "hs1.test"

// Env is an engine over an open store, closed when the test ends.
type Env struct {
	DB     *store.DB
	Stream *rooms.StreamGen
	Bus    *bus.InProcess
	Engine *rooms.Engine
}

// New opens the database at dbURL (see testdb) and builds an engine for
// ServerName whose new rooms have the given version.
func New(t testing.TB, dbURL, defaultVersion string) Env {
	t.Helper()
	return NewWith(t, dbURL, nil, rooms.Options{DefaultVersion: defaultVersion})
}

// NewWith is New with the engine's other options (ServerName and its
// key are filled in here), reading and writing through st(db) when st
// is set: a store that counts or fails some reads.
func NewWith(t testing.TB, dbURL string, st func(*store.DB) rooms.Store, opts rooms.Options) Env {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, dbURL, 4)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	b := bus.New()
	stream, err := rooms.OpenStream(ctx, db, b)
	if err != nil {
		t.Fatal(err)
	}
	_, opts.PrivateKey, _ = ed25519.GenerateKey(nil)
	opts.ServerName, opts.KeyID = ServerName, "ed25519:test"
	var engineStore rooms.Store = db
	if st != nil {
		engineStore = st(db)
	}
	return Env{DB: db, Stream: stream, Bus: b, Engine: rooms.New(engineStore, stream, b, opts)}
}
