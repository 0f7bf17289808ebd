package main

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"time"
)

// keepHeapProfile leaves Go's heap profiling on only when its profile
// can be read, through listen.pprof. Otherwise the runtime still walks
// the stack of one allocation in every 512 KiB (under load, thousands a
// second), which maps in the function tables of every path that
// allocates (up to 9 MiB of the binary, counted in RSS), and keeps a
// table of the stacks it saw. It must run before the server allocates
// much: samples taken stay in the table.
func keepHeapProfile(pprofAddr string) {
	if pprofAddr == "" {
		runtime.MemProfileRate = 0
	}
}

// servePprof serves Go's runtime profiles on addr (listen.pprof, loopback
// only: config refuses anything else) until ctx ends. It is its own
// listener on its own mux, never the client API's: importing
// net/http/pprof registers on http.DefaultServeMux, which nothing here
// serves.
func servePprof(addr string, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Info("listening", "listener", "pprof", "addr", ln.Addr().String())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("pprof listener stopped", "err", err)
		}
	}()
	return func() { srv.Close(); <-done }, nil
}
