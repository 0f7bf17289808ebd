package server

import (
	"testing"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/lifecycle"
)

// BeforeDBClose sets a function Shutdown calls just before it closes the
// database, and returns a function reporting how many requests were
// running then.
func BeforeDBClose(s *Server, f func()) func() int64 {
	var running int64 = -1
	s.beforeDBClose = func() {
		running = s.handlers.n.Load()
		f()
	}
	return func() int64 { return running }
}

// WorkerNames lists the registered background workers.
func WorkerNames(s *Server) []string { return append(s.commit.Names(), s.workers.Names()...) }

// RunningWorkers lists the background workers that have not returned.
func RunningWorkers(s *Server) []string { return append(s.commit.Running(), s.workers.Running()...) }

// AddWorker registers one more worker; call it before Start.
func AddWorker(s *Server, name string, w lifecycle.Worker) { s.workers.Add(name, w) }

// BusListeners lists the listeners of a topic of the server's bus.
func BusListeners(s *Server, topic string) []string { return s.changes.Listeners(topic) }

// UseSerialisingBus builds the servers a test starts on a bus that
// passes every change through JSON (bus.Serialising), until it ends.
// Tests that call it must not run in parallel.
func UseSerialisingBus(t testing.TB) {
	old := newBus
	newBus = func() serverBus { return bus.NewSerialising() }
	t.Cleanup(func() { newBus = old })
}

// LongPolls is how many /sync requests wait for news now.
func LongPolls(s *Server) int { return s.notifier.Waiting() }
