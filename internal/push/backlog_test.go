package push_test

import (
	"testing"

	"github.com/myelin-chat/myelin/internal/push"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/testdb"
)

// TestBacklogCountsTheBatchInHand: the backlog counts the events the
// worker has taken and not yet evaluated, not only the queued ones, so
// that a benchmark waiting for it to reach 0 does not start while the
// worker still evaluates (the queue is empty as soon as the worker
// takes its batch).
func TestBacklogCountsTheBatchInHand(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		env := newEngineEnv(t, dbURL, nil, rooms.Options{})
		svc := env.push(push.Options{})
		env.createRoom(t)
		if n := svc.Backlog(); n == 0 {
			t.Fatal("backlog 0 with createRoom's events published and no worker running")
		}
		release := svc.HoldEvaluation()
		env.run(t, svc, release)
		// The worker takes what is queued and waits on the hold.
		waitUntil(t, "the worker never took the queued events", func() bool { return svc.Queued() == 0 })
		if n := svc.Backlog(); n == 0 {
			t.Fatal("backlog 0 while the worker holds events it has not evaluated")
		}
		release()
		waitUntil(t, "backlog left after the worker was released", func() bool { return svc.Backlog() == 0 })
	})
}
