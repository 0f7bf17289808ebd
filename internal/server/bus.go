package server

import "github.com/myelin-chat/myelin/internal/bus"

// serverBus is the bus the services are built on, with the names of its
// listeners for the wiring test.
type serverBus interface {
	bus.Bus
	Listeners(topic string) []string
}

// newBus makes the server's bus: the in-process one. Tests swap in
// bus.NewSerialising to show that every listener works with changes as
// another process would receive them (export_test.go).
var newBus = func() serverBus { return bus.New() }
