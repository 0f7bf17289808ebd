package remote

import (
	"context"

	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// Which events the sender delivers, and past which ACL.

// delivers reports whether this server sends an event of its stream to
// the room's other servers: its own users' events, and events another
// server handed over through a membership handshake, which reach the
// rest of the room only through this one (Synapse's send_on_behalf_of).
// Events received over /send are delivered by their origin, and
// withheld events by no one (our join through send_join, which the
// resident server forwards; out-of-band memberships).
func (s *Sender) delivers(r store.EventRow) bool {
	if r.Withheld {
		return false
	}
	return r.OnBehalfOf != "" || ServerOf(r.Sender) == s.o.ServerName
}

// aclFor is the test a destination of an event must pass: the room's
// ACL in the state after the event. An m.room.server_acl event itself
// also goes to the servers the ACL before it admitted: the servers it
// newly denies learn that they are denied rather than hear nothing
// more (server-server spec "Server Access Control Lists" leaves the
// sending side open; the rule that a server stops sending to a denied
// one should not hide the denial itself).
func (s *Sender) aclFor(ctx context.Context, ev *rooms.Event, after rooms.StateMap) (func(string) bool, error) {
	allowedAfter, err := s.aclIn(ctx, after)
	if err != nil {
		return nil, err
	}
	if ev.Type() != "m.room.server_acl" || ev.StateKey() == nil || *ev.StateKey() != "" {
		return allowedAfter, nil
	}
	before, err := s.o.Rooms.StateAt(ctx, ev.StateBefore)
	if err != nil {
		return nil, err
	}
	allowedBefore, err := s.aclIn(ctx, before)
	if err != nil {
		return nil, err
	}
	return func(d string) bool { return allowedBefore(d) || allowedAfter(d) }, nil
}

// aclIn is the ACL of a state as a test of server names; everyone
// passes without an ACL.
func (s *Sender) aclIn(ctx context.Context, state rooms.StateMap) (func(string) bool, error) {
	acl, err := s.o.Rooms.StateEvent(ctx, state, "m.room.server_acl", "")
	if err != nil || acl == nil {
		return func(string) bool { return true }, err
	}
	return func(d string) bool { return rooms.ACLAllows(acl.Content(), d) }, nil
}
