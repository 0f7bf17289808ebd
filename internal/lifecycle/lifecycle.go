// Package lifecycle gives every background worker one shape and one
// owner: a Worker runs until its context ends, and a Group starts a list
// of them, cancels them and waits for them with a deadline. The server
// keeps the one list of workers (internal/server/workers.go); no
// constructor starts a goroutine of its own.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
)

// Worker is a background job. Run returns once ctx ends (with nil), or
// earlier with an error when it cannot go on. Goroutines a worker starts
// for parts of its work (one per destination, per pusher) are its own:
// Run returns only after they have.
type Worker interface {
	Run(ctx context.Context) error
}

// Func makes a function a Worker, as http.HandlerFunc does a handler.
type Func func(ctx context.Context) error

// Run calls f.
func (f Func) Run(ctx context.Context) error { return f(ctx) }

// Group is a list of named workers started together and stopped
// together. Add them before Start.
type Group struct {
	// Log, when set, hears of a worker that ended with an error before
	// Stop: it will not run again until the process restarts.
	Log *slog.Logger

	names   []string
	workers []Worker

	mu      sync.Mutex
	cancel  context.CancelFunc
	running map[string]bool
	errs    []error
	wg      sync.WaitGroup
}

// Add registers a worker under a name unique in the group (the name is
// what logs and errors call it).
func (g *Group) Add(name string, w Worker) {
	if slices.Contains(g.names, name) {
		panic("lifecycle: two workers named " + name)
	}
	g.names = append(g.names, name)
	g.workers = append(g.workers, w)
}

// Names lists the workers in the order they were added.
func (g *Group) Names() []string { return slices.Clone(g.names) }

// Start runs every worker in its own goroutine with a child of ctx.
func (g *Group) Start(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cancel != nil {
		panic("lifecycle: group started twice")
	}
	g.cancel = cancel
	g.running = make(map[string]bool, len(g.names))
	for i, w := range g.workers {
		name := g.names[i]
		g.running[name] = true
		g.wg.Add(1)
		go g.run(ctx, name, w)
	}
}

func (g *Group) run(ctx context.Context, name string, w Worker) {
	defer g.wg.Done()
	err := w.Run(ctx)
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.running, name)
	if err != nil && !errors.Is(err, context.Canceled) {
		err = fmt.Errorf("%s: %w", name, err)
		g.errs = append(g.errs, err)
		if g.Log != nil && ctx.Err() == nil {
			g.Log.Error("background worker stopped", "worker", name, "err", err)
		}
	}
}

// Running lists the workers that have not returned yet, sorted.
func (g *Group) Running() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for n := range g.running {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Stop cancels the workers and waits for them until ctx ends. The error
// joins those the workers returned and, should ctx end first, names the
// ones still running. Stop on a group never started returns nil.
func (g *Group) Stop(ctx context.Context) error {
	g.mu.Lock()
	cancel := g.cancel
	g.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	done := make(chan struct{})
	go func() {
		g.wg.Wait()
		close(done)
	}()
	var late error
	select {
	case <-done:
	case <-ctx.Done():
		late = fmt.Errorf("lifecycle: workers still running %v: %w", g.Running(), ctx.Err())
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return errors.Join(append(slices.Clone(g.errs), late)...)
}
