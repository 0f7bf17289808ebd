package remote

import (
	"context"

	"github.com/matrix-org/gomatrixserverlib/spec"

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

// concurrentWithJoin are the events a server that joined through this
// one (r, its join, handed over by send_join) lacks though it is now in
// the room: those this server stored between building the join's
// template (make_join) and receiving it. The join's prev_events predate
// them, so they are not in the state send_join answered with, and the
// joining server was not in the room when they were sent. Until an event
// names them as prev_events, they stay the room's forward extremities
// beside the join, stored before it; they are sent to the joining server
// (those it may see), which fetches what lies between as for any gap.
// Without this it learnt of them only with the room's next event:
// a rule of a policy list written during the join stayed unknown to it
// for as long as the list stayed quiet.
func (s *Sender) concurrentWithJoin(ctx context.Context, r store.EventRow) ([]int64, error) {
	if r.OnBehalfOf == "" || r.Type != spec.MRoomMember || r.StateKey == nil || ServerOf(*r.StateKey) != r.OnBehalfOf ||
		r.Membership == nil || *r.Membership != spec.Join {
		return nil, nil
	}
	ids, _, err := s.o.Rooms.Extremities(ctx, r.RoomID)
	if err != nil {
		return nil, err
	}
	evs, err := s.o.Rooms.EventsByID(ctx, ids)
	if err != nil {
		return nil, err
	}
	var out []int64
	for _, ev := range evs {
		if ev.EventID() == r.EventID || ev.StreamPos == 0 || ev.StreamPos >= r.StreamPos {
			continue
		}
		if ok, err := s.o.Rooms.ServerCanSee(ctx, r.OnBehalfOf, ev); err != nil {
			return nil, err
		} else if ok {
			out = append(out, ev.NID)
		}
	}
	return out, nil
}
