package testserver

import (
	"net"
	"sync/atomic"
	"testing"
)

// Trap is a loopback TCP port that counts the connections made to it and
// hangs up on each at once: tests of the outbound policy point a server
// at it and check that nothing connected, or that an open port answers
// the same as a closed one.
type Trap struct {
	// Addr is the trap's host:port.
	Addr     string
	accepted atomic.Int32
}

// NewTrap opens a trap on 127.0.0.1 until the test ends.
func NewTrap(t testing.TB) *Trap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testserver: trap: %v", err)
	}
	tr := &Trap{Addr: ln.Addr().String()}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tr.accepted.Add(1)
			c.Close()
		}
	}()
	return tr
}

// Port is the trap's port.
func (tr *Trap) Port() string {
	_, port, _ := net.SplitHostPort(tr.Addr)
	return port
}

// Accepted is how many connections were made to the trap.
func (tr *Trap) Accepted() int { return int(tr.accepted.Load()) }

// ClosedAddr is a loopback host:port nothing listens on.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	return freeAddr(t, "127.0.0.1")
}
