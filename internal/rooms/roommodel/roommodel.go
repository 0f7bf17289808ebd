// Package roommodel holds the room engine's words that the layers below
// and above it share: a piece of room state's key and an event's status.
// It is a leaf (it imports nothing of Myelin's) so that the store, which
// sits below the engine, can use the engine's words instead of defining
// its own.
package roommodel

// StateKey identifies a piece of room state: its event type and state
// key.
type StateKey struct {
	Type     string
	StateKey string
}

// Status is what the room engine decided about a stored event.
type Status int

// The numbers are the store's encoding of the status column; changing
// one changes what existing databases mean.
const (
	// Accepted events passed every auth check.
	Accepted Status = 0
	// SoftFailed events passed the checks against their auth events and
	// their state before but not against the room's current state
	// (spec, server-server API: "Soft failure").
	SoftFailed Status = 1
	// Rejected events failed the checks against their auth events or
	// their state before (spec, server-server API: "Rejection").
	Rejected Status = 2
)
