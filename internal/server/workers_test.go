package server_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/lifecycle"
	"github.com/myelin-chat/myelin/internal/server"
	"github.com/myelin-chat/myelin/internal/testdb"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestWorkersStopWithTheServer: every background worker is in the one
// list, all of them run after Start, and Shutdown cancels them and waits
// for each (one that is slow to stop included) before it closes the
// database.
func TestWorkersStopWithTheServer(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		cfg := testserver.Config(t, dbURL)
		cfg.Federation.Enabled = true
		cfg.RateLimit.Enabled = true
		cfg.Presence.Enabled = true
		s, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		want := []string{
			"group-commit", "ratelimit-sweep", "uia-expiry", "sync-notifier", "push", "push-pruning", "search-indexer",
			"guest-enforcer", "typing-expiry", "presence-timeouts", "sqlite-checkpoints", "room-eviction",
			"redaction-pruning", "media-cleanup", "room-deletion", "reputation-log", "reputation-media-rooms", "reputation-user-extent", "reputation-feeds", "delayed-events", "appservice-sender", "appservice-ephemeral", "sliding-sync-connections", "federation-join-presence", "federation-join-device-lists",
			"keys-device-list-refetch", "federation-partial-state", "federation-sender",
			"federation-txn-pruning",
		}
		if got := server.WorkerNames(s); !slices.Equal(got, want) {
			t.Fatalf("registered workers:\n got %v\nwant %v", got, want)
		}

		// A worker that takes a while to stop: Shutdown must wait for it.
		var stopped atomic.Bool
		server.AddWorker(s, "slow-to-stop", lifecycle.Func(func(ctx context.Context) error {
			<-ctx.Done()
			time.Sleep(200 * time.Millisecond)
			stopped.Store(true)
			return nil
		}))
		var atClose []string
		var slowDone bool
		server.BeforeDBClose(s, func() {
			atClose = server.RunningWorkers(s)
			slowDone = stopped.Load()
		})
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		// Presence and the checkpointer return at once where they have
		// nothing to do (presence off, PostgreSQL); every other worker
		// runs until it is told to stop.
		running := server.RunningWorkers(s)
		for _, name := range append(slices.Clone(want), "slow-to-stop") {
			if name == "sqlite-checkpoints" && !slices.Contains(running, name) {
				continue // PostgreSQL needs no checkpoints
			}
			if !slices.Contains(running, name) {
				t.Errorf("worker %s is not running after Start (running: %v)", name, running)
			}
		}

		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Fatalf("shutdown: %v", err)
		}
		if len(atClose) != 0 || !slowDone {
			t.Errorf("database closed with workers still running: %v (slow worker done: %v)", atClose, slowDone)
		}
	})
}
