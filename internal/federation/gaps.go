package federation

import (
	"context"
	"fmt"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/federation/remote"
	"github.com/myelin-chat/myelin/internal/rooms"
)

// receiveWithRemoteState receives an event whose prev events are still
// missing after /get_missing_events: it asks the sending server for the
// room state at each missing prev event (/state, checked: signatures and
// auth), adds the prev event itself when it is a state event the state
// allows, and lets the room engine resolve the event's state from those.
// When the origin does not supply them the event is refused (Synapse
// drops it too): a decision about the event, not a failure to decide.
func (a *API) receiveWithRemoteState(ctx context.Context, origin string, v gomatrixserverlib.IRoomVersion, pdu gomatrixserverlib.PDU, missing []string) (*rooms.Event, error) {
	self, dest := spec.ServerName(a.d.ServerName), spec.ServerName(origin)
	roomID := pdu.RoomID().String()
	prevStates := map[string][]gomatrixserverlib.PDU{}
	var chain []gomatrixserverlib.PDU
	for _, id := range missing {
		resp, err := a.d.Client.LookupState(ctx, self, dest, roomID, id, v.Version())
		if err != nil {
			return nil, &refusedPDU{fmt.Errorf("state at %s from %s: %w", id, origin, err)}
		}
		state, auth, err := gomatrixserverlib.CheckStateResponse(ctx, &resp, v.Version(), a.d.KeyRing, a.d.Remote.EventProvider(origin), remote.UserIDForSender)
		if err != nil {
			return nil, &refusedPDU{fmt.Errorf("state at %s from %s: %w", id, origin, err)}
		}
		prev, err := a.fetchEvent(ctx, origin, v, id)
		if err != nil {
			return nil, &refusedPDU{err}
		}
		prevStates[id] = withStateEvent(state, prev)
		chain = append(chain, auth...)
	}
	return a.d.Rooms.ReceiveWithState(ctx, pdu, prevStates, chain)
}

// fetchEvent gets one event from a server and checks its signatures.
func (a *API) fetchEvent(ctx context.Context, origin string, v gomatrixserverlib.IRoomVersion, id string) (gomatrixserverlib.PDU, error) {
	txn, err := a.d.Client.GetEvent(ctx, spec.ServerName(a.d.ServerName), spec.ServerName(origin), id)
	if err != nil {
		return nil, fmt.Errorf("event %s from %s: %w", id, origin, err)
	}
	if len(txn.PDUs) != 1 {
		return nil, fmt.Errorf("event %s from %s: %d events in the answer", id, origin, len(txn.PDUs))
	}
	pdu, err := rooms.ParsePDU(v, txn.PDUs[0])
	if err != nil {
		return nil, fmt.Errorf("event %s from %s: %w", id, origin, err)
	}
	if pdu.EventID() != id {
		return nil, fmt.Errorf("event %s from %s: got %s instead", id, origin, pdu.EventID())
	}
	if err := gomatrixserverlib.VerifyEventSignatures(ctx, pdu, a.d.KeyRing, remote.UserIDForSender); err != nil {
		return nil, fmt.Errorf("event %s from %s: %w", id, origin, err)
	}
	return pdu, nil
}

// withStateEvent is the state after ev given the state before it: ev
// replaces its key when it is a state event the state allows.
func withStateEvent(before []gomatrixserverlib.PDU, ev gomatrixserverlib.PDU) []gomatrixserverlib.PDU {
	if ev.StateKey() == nil {
		return before
	}
	auth, err := gomatrixserverlib.NewAuthEvents(before)
	if err != nil || gomatrixserverlib.Allowed(ev, auth, remote.UserIDForSender) != nil {
		return before
	}
	out := make([]gomatrixserverlib.PDU, 0, len(before)+1)
	for _, p := range before {
		if p.Type() == ev.Type() && p.StateKey() != nil && *p.StateKey() == *ev.StateKey() {
			continue
		}
		out = append(out, p)
	}
	return append(out, ev)
}
