package reputation

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/myelin-chat/myelin/internal/queue"
	"github.com/myelin-chat/myelin/internal/store"
)

// LogStore keeps the decision log.
type LogStore interface {
	AddReputationDecisions(ctx context.Context, ds []store.ReputationDecision) error
	PruneReputationDecisions(ctx context.Context, beforeTS int64, maxRows int64) (int64, error)
}

// logQueue bounds the decisions waiting to be written: Check never
// waits for the database, and under a flood the excess is counted and
// dropped rather than held.
const logQueue = 4096

// pruneEvery is how often the log is cut to its retention and size.
const pruneEvery = time.Hour

// Log writes the decisions enforcement points make to the database, off
// their path (Record never blocks), and keeps the log within its
// retention and size.
type Log struct {
	store     LogStore
	log       *slog.Logger
	retention time.Duration
	max       int64
	queue     *queue.Queue[Decision]
	dropped   atomic.Int64
}

// NewLog makes the decision log; Run writes it.
func NewLog(s LogStore, log *slog.Logger, retention time.Duration, maxRows int64) *Log {
	return &Log{store: s, log: log, retention: retention, max: maxRows, queue: queue.New[Decision](logQueue)}
}

// Record queues a decision; a full queue drops it (counted in Dropped).
func (l *Log) Record(d Decision) {
	if !l.queue.TryPush(d) {
		l.dropped.Add(1)
	}
}

// Dropped is how many decisions a full queue dropped since start.
func (l *Log) Dropped() int64 { return l.dropped.Load() }

// Run writes queued decisions in batches until ctx ends, and prunes the
// log at start and every pruneEvery.
func (l *Log) Run(ctx context.Context) error {
	l.prune(ctx)
	tick := time.NewTicker(pruneEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			l.prune(ctx)
		case <-l.queue.Ready():
			ds := l.queue.Take(256)
			if len(ds) == 0 {
				continue
			}
			batch := make([]store.ReputationDecision, len(ds))
			for i, d := range ds {
				batch[i] = toRow(d)
			}
			if err := l.store.AddReputationDecisions(ctx, batch); err != nil && ctx.Err() == nil {
				l.log.Warn("reputation: writing the decision log", "err", err, "decisions", len(batch))
			}
		}
	}
}

func (l *Log) prune(ctx context.Context) {
	before := time.Now().Add(-l.retention).UnixMilli()
	if _, err := l.store.PruneReputationDecisions(ctx, before, l.max); err != nil && ctx.Err() == nil {
		l.log.Warn("reputation: pruning the decision log", "err", err)
	}
}

func toRow(d Decision) store.ReputationDecision {
	return store.ReputationDecision{TS: d.TS, Action: string(d.Action), Kind: string(d.Kind), Entity: d.Entity,
		Feeds: d.Feeds, Score: d.Score, Detail: d.Detail}
}
