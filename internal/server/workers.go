package server

import (
	"context"
	"time"

	"github.com/myelin-chat/myelin/internal/federation"
	"github.com/myelin-chat/myelin/internal/lifecycle"
)

// registerWorkers is the one list of Myelin's background workers: what
// runs between Start and Shutdown besides the listeners. Each runs until
// its context ends; Shutdown stops them all after the last request and
// before the group commit and the database (see Shutdown). Goroutines a
// worker starts for parts of its work (the federation sender's one per
// destination, push's one per pusher) end before its Run returns.
//
// The group commit is a worker of its own group, stopped after the
// others (they may still send events: the guest enforcer's leaves) and
// before the database. Not here: the goroutines serving connections,
// which net/http owns.
func (s *Server) registerWorkers() {
	s.commit.Log = s.log
	s.commit.Add("group-commit", lifecycle.Func(s.engine.RunGroupCommit))

	w := &s.workers
	w.Log = s.log
	if s.limiter != nil {
		w.Add("ratelimit-sweep", every(s.limiter.Run, time.Minute))
	}
	w.Add("uia-expiry", every(s.uia.Run, time.Minute))
	w.Add("sync-notifier", lifecycle.Func(func(ctx context.Context) error {
		s.notifier.Run(ctx)
		return nil
	}))
	w.Add("push", s.push)
	w.Add("push-pruning", lifecycle.Func(s.push.RunPruning))
	w.Add("search-indexer", s.indexer)
	w.Add("guest-enforcer", s.guests)
	w.Add("typing-expiry", every(s.typing.Run, time.Second))
	w.Add("presence-timeouts", s.presence)
	w.Add("sqlite-checkpoints", every(s.db.RunCheckpoints, time.Second))
	w.Add("room-eviction", lifecycle.Func(func(ctx context.Context) error {
		return s.engine.RunEviction(ctx, time.Minute, 10*time.Minute)
	}))
	w.Add("redaction-pruning", lifecycle.Func(s.pruneRedactions))
	w.Add("media-cleanup", s.media)
	w.Add("room-deletion", s.roomAdmin.Deletions())
	w.Add("reputation-log", s.repLog)
	w.Add("reputation-media-rooms", s.repMedia)
	w.Add("reputation-user-extent", s.repUsers)
	w.Add("reputation-feeds", s.repFeeds)
	w.Add("delayed-events", s.delayed)
	w.Add("appservice-sender", s.asSender)
	w.Add("appservice-ephemeral", s.asEphemeral)
	// After the last request, so that the connections' last answers are
	// written before the database closes (they resume after a restart).
	w.Add("sliding-sync-connections", s.sliding)
	if s.joinPresence != nil {
		w.Add("federation-join-presence", s.joinPresence)
	}
	if s.joinDevices != nil {
		w.Add("federation-join-device-lists", s.joinDevices)
		// Other servers' device lists are refetched only with federation.
		w.Add("keys-device-list-refetch", s.keys)
	}
	if s.partialState != nil {
		w.Add("federation-partial-state", s.partialState)
	}
	if s.sender != nil {
		w.Add("federation-sender", s.sender)
		w.Add("federation-txn-pruning", lifecycle.Func(func(ctx context.Context) error {
			return federation.PruneInboundTxns(ctx, s.db, s.log)
		}))
	}
}

// every makes a worker of a loop that takes its period.
func every(run func(context.Context, time.Duration) error, d time.Duration) lifecycle.Worker {
	return lifecycle.Func(func(ctx context.Context) error { return run(ctx, d) })
}
