// Package periodic runs the background chores that repeat at a fixed
// interval (sweeps, expiries, pruning) until their context ends, so that
// each worker states only what it does and how often.
package periodic

import (
	"context"
	"time"
)

// Every calls fn every interval until ctx ends, the first time one
// interval from now.
func Every(ctx context.Context, interval time.Duration, fn func()) {
	run(ctx, interval, false, fn)
}

// NowAndEvery calls fn at once, then every interval until ctx ends.
func NowAndEvery(ctx context.Context, interval time.Duration, fn func()) {
	run(ctx, interval, true, fn)
}

func run(ctx context.Context, interval time.Duration, now bool, fn func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	if now {
		fn()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}
