package rooms

import (
	"context"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// What another server may see of a room's history, as Synapse's
// filter_events_for_server decides it: the room's history visibility at
// the event and the memberships of the server's users there. Servers are
// not users: a server that has left keeps no "shared" history beyond
// what the visibility alone allows.

// ServerCanSee reports whether a server may see an event: with the
// history visibility of the state before the event (shared when unset),
// world_readable and shared history is visible to any server, invited
// history to a server with a member invited or joined, joined history to
// a server with a joined member.
func (e *Engine) ServerCanSee(ctx context.Context, serverName string, ev *Event) (bool, error) {
	return e.serverCanSee(ctx, serverName, ev, map[int64]bool{})
}

// serverCanSee is ServerCanSee with a cache of the answers per snapshot.
func (e *Engine) serverCanSee(ctx context.Context, serverName string, ev *Event, seen map[int64]bool) (bool, error) {
	if !ev.HasState() {
		// Without the state at the event there is nothing to judge by;
		// Synapse lets servers see such events (outliers) whole.
		return true, nil
	}
	ok, err := e.serverCanSeeAt(ctx, serverName, ev.StateBefore, seen)
	if ok || err != nil {
		return ok, err
	}
	// A server's own users' membership events are judged with the state
	// after them too, so that a server sees its users join (Synapse reads
	// the state at a state event as the state after it).
	if ev.Type() == spec.MRoomMember && ev.StateKey() != nil && serverOf(*ev.StateKey()) == serverName && ev.StateAfter != ev.StateBefore {
		return e.serverCanSeeAt(ctx, serverName, ev.StateAfter, seen)
	}
	return false, nil
}

func (e *Engine) serverCanSeeAt(ctx context.Context, serverName string, snapshot int64, seen map[int64]bool) (bool, error) {
	if ok, cached := seen[snapshot]; cached {
		return ok, nil
	}
	state, err := e.snapshotState(ctx, snapshot)
	if err != nil {
		return false, err
	}
	ok, err := e.serverCanSeeState(ctx, serverName, state)
	if err == nil {
		seen[snapshot] = ok
	}
	return ok, err
}

// serverCanSeeState applies the rules to one state.
func (e *Engine) serverCanSeeState(ctx context.Context, serverName string, state StateMap) (bool, error) {
	hv := Shared
	if hvEv, err := e.StateEvent(ctx, state, spec.MRoomHistoryVisibility, ""); err != nil {
		return false, err
	} else if hvEv != nil {
		if val, err := hvEv.HistoryVisibility(); err == nil {
			hv = string(val)
		}
	}
	if hv != Invited && hv != Joined {
		return true, nil
	}
	var nids []int64
	for k, n := range state {
		if k.Type == spec.MRoomMember && serverOf(k.StateKey) == serverName {
			nids = append(nids, n)
		}
	}
	members, err := e.EventsByNID(ctx, nids)
	if err != nil {
		return false, err
	}
	for _, m := range members {
		switch ms, _ := m.Membership(); {
		case ms == spec.Join:
			return true, nil
		case ms == spec.Invite && hv == Invited:
			return true, nil
		}
	}
	return false, nil
}

// EventsForServer returns events as a server may have them: those it may
// see whole, the others redacted, as Synapse's filter_events_for_server
// does for /event, /backfill and /get_missing_events, so that the room's
// graph stays whole while the content stays hidden.
func (e *Engine) EventsForServer(ctx context.Context, serverName string, evs []*Event) ([]gomatrixserverlib.PDU, error) {
	seen := map[int64]bool{}
	out := make([]gomatrixserverlib.PDU, 0, len(evs))
	for _, ev := range evs {
		ok, err := e.serverCanSee(ctx, serverName, ev, seen)
		if err != nil {
			return nil, err
		}
		if ok || ev.RedactedBy != "" {
			out = append(out, ev.PDU)
			continue
		}
		v, err := gomatrixserverlib.GetRoomVersion(ev.Version())
		if err != nil {
			return nil, err
		}
		out = append(out, redactedCopy(ev.PDU, v))
	}
	return out, nil
}
