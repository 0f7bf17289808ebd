package push_test

import (
	"context"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/accountdata"
	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/push"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// TestBacklogCountsTheBatchInHand: the backlog counts the events the
// worker has taken and not yet evaluated, not only the queued ones, so
// that a benchmark waiting for it to reach 0 does not start while the
// worker still evaluates (the queue is empty as soon as the worker
// takes its batch).
func TestBacklogCountsTheBatchInHand(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
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
		_, priv, _ := ed25519.GenerateKey(nil)
		engine := rooms.New(db, stream, b, rooms.Options{ServerName: "a.test", KeyID: "ed25519:a", PrivateKey: priv, DefaultVersion: "10"})
		svc := push.New(db, engine, accountdata.New(db, stream, b), push.Options{ServerName: "a.test", Bus: b})
		_, err = engine.CreateRoom(ctx, rooms.CreateRequest{Creator: "@alice:a.test", Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		if n := svc.Backlog(); n == 0 {
			t.Fatal("backlog 0 with createRoom's events published and no worker running")
		}
		release := svc.HoldEvaluation()
		stopped := make(chan struct{})
		go func() { _ = svc.Run(ctx); close(stopped) }()
		defer func() { release(); cancel(); <-stopped }()
		// The worker takes what is queued and waits on the hold.
		for deadline := time.Now().Add(10 * time.Second); svc.Queued() != 0; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the worker never took the queued events")
			}
		}
		if n := svc.Backlog(); n == 0 {
			t.Fatal("backlog 0 while the worker holds events it has not evaluated")
		}
		release()
		deadline := time.Now().Add(10 * time.Second)
		for svc.Backlog() != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("backlog %d after the worker was released", svc.Backlog())
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}
