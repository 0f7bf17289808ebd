package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// ShutdownTimeout is how long Run gives Shutdown after SIGTERM: long
// enough for requests in flight to be answered, short enough for a
// supervisor's stop timeout (systemd's and Docker's are 10 s).
const ShutdownTimeout = 5 * time.Second

// ErrShuttingDown is the cause (context.Cause) with which Shutdown
// cancels the contexts of the requests in flight: a long-polling /sync
// stops waiting and answers with what it has.
var ErrShuttingDown = errors.New("server: shutting down")

// inflight counts the handlers running, so that Shutdown closes the
// database only once none is left: http.Server.Shutdown stops waiting
// when its context ends, with handlers still running.
type inflight struct {
	n atomic.Int64
}

func (f *inflight) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.n.Add(1)
		defer f.n.Add(-1)
		h.ServeHTTP(w, r)
	})
}

// wait returns once no handler runs, or with an error when ctx ends first.
func (f *inflight) wait(ctx context.Context) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for f.n.Load() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("server: %d requests still running: %w", f.n.Load(), ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// serveRequestsFrom makes every request's context a child of the
// server's base context, which Shutdown cancels, and counts handlers.
func (s *Server) serveRequestsFrom(hs ...*http.Server) {
	for _, h := range hs {
		if h == nil {
			continue
		}
		h.BaseContext = func(net.Listener) context.Context { return s.base }
		h.Handler = s.handlers.wrap(h.Handler)
	}
}

// Shutdown stops the server within ctx, in the order that loses nothing:
//
//  1. The listeners close and the request contexts are cancelled with
//     ErrShuttingDown: long-polls wake and answer (200, with what they
//     have); other requests finish or fail fast.
//  2. Once every handler has returned, the background workers stop.
//  3. The group commit writes what it was given (everything it
//     acknowledged is already committed; this waits for its worker).
//  4. The database closes last, when nothing can use it any more.
//
// Should ctx end first, the database is closed anyway (the process is
// about to exit) and the error says what was still running.
func (s *Server) Shutdown(ctx context.Context) error {
	var errs []error
	s.fresh.closeAll()
	servers := []*http.Server{s.client, s.federation, s.metrics, s.acmeHTTP}
	herrs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, h := range servers {
		if h != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				herrs[i] = h.Shutdown(ctx)
			}()
		}
	}
	s.stopRequests(ErrShuttingDown)
	wg.Wait()
	for i, h := range servers {
		if herrs[i] != nil {
			// Connections still busy after ctx: cut them.
			h.Close()
		}
	}
	errs = append(errs, herrs...)
	errs = append(errs, s.handlers.wait(ctx))
	if s.cancel != nil {
		s.cancel()
	}
	errs = append(errs, waitCtx(ctx, "listeners", s.wg.Wait))
	if s.acmeLife != nil {
		s.acmeLife.end()
	}
	errs = append(errs, s.workers.Stop(ctx))
	errs = append(errs, s.commit.Stop(ctx))
	if s.engine != nil {
		// Writes queued while the group commit was not running have a
		// drain goroutine of their own.
		errs = append(errs, waitCtx(ctx, "group commit", s.engine.Flush))
	}
	if s.beforeDBClose != nil {
		s.beforeDBClose()
	}
	errs = append(errs, s.db.Close())
	return errors.Join(errs...)
}

// waitCtx runs wait, giving up (with an error naming what) when ctx ends.
func waitCtx(ctx context.Context, what string, wait func()) error {
	done := make(chan struct{})
	go func() {
		wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("server: waiting for %s: %w", what, ctx.Err())
	}
}
