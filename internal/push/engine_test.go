package push_test

import (
	"context"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/accountdata"
	"github.com/myelin-chat/myelin/internal/push"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/roomtest"
	"github.com/myelin-chat/myelin/internal/store"
)

// engineEnv is a room engine for roomtest.ServerName, whose users push
// evaluates as local, for the tests of the push worker without a
// server around it.
type engineEnv struct {
	roomtest.Env
	ctx context.Context
}

// newEngineEnv is roomtest.NewWith, with a context that ends with the
// test.
func newEngineEnv(t *testing.T, dbURL string, st func(*store.DB) rooms.Store, opts rooms.Options) engineEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	opts.DefaultVersion = "10"
	return engineEnv{Env: roomtest.NewWith(t, dbURL, st, opts), ctx: ctx}
}

// push is a push service on the engine (ServerName and Bus are filled
// in here), not yet running.
func (e engineEnv) push(opts push.Options) *push.Service {
	opts.ServerName, opts.Bus = roomtest.ServerName, e.Bus
	return push.New(e.DB, e.Engine, accountdata.New(e.DB, e.Stream, e.Bus), opts)
}

// run starts svc's worker until the test ends; release, when set, lets
// go of a HoldEvaluation first, so that the worker can stop.
func (e engineEnv) run(t *testing.T, svc *push.Service, release func()) {
	ctx, cancel := context.WithCancel(e.ctx)
	stopped := make(chan struct{})
	go func() { _ = svc.Run(ctx); close(stopped) }()
	t.Cleanup(func() {
		if release != nil {
			release()
		}
		cancel()
		<-stopped
	})
}

// alice and bob are users of the engine's server.
const (
	alice = "@alice:" + roomtest.ServerName
	bob   = "@bob:" + roomtest.ServerName
)

// createRoom is a public room alice created.
func (e engineEnv) createRoom(t *testing.T) string {
	t.Helper()
	room, err := e.Engine.CreateRoom(e.ctx, rooms.CreateRequest{Creator: alice, Preset: "public_chat"})
	if err != nil {
		t.Fatal(err)
	}
	return room
}

// waitPushed waits until svc has evaluated every event through pos,
// woken by each batch it finishes.
func waitPushed(t *testing.T, svc *push.Service, pos int64) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		processed := svc.Processed()
		if svc.Through() >= pos {
			return
		}
		select {
		case <-processed:
		case <-deadline:
			t.Fatalf("push never got through %d (at %d)", pos, svc.Through())
		}
	}
}

// waitUntil polls cond, failing the test with what after a bound.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal(what)
		}
	}
}
