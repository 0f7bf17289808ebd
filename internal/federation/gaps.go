package federation

import (
	"context"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/myelin-chat/myelin/internal/federation/remote"
	"github.com/myelin-chat/myelin/internal/rooms"
)

// receiveWithRemoteState receives an event whose prev events are still
// missing after /get_missing_events: it asks the sending server for the
// room state at each missing prev event (remote.StateAt: /state_ids and
// /event, checked: signatures and auth), adds the prev event itself when
// it is a state event the state allows, and lets the room engine resolve
// the event's state from those. chain holds auth events already fetched
// for the event (its /event_auth). When the origin does not supply them
// the event is refused (Synapse drops it too): a decision about the
// event, not a failure to decide.
func (a *API) receiveWithRemoteState(ctx context.Context, origin string, v gomatrixserverlib.IRoomVersion, pdu gomatrixserverlib.PDU, missing []string, chain []gomatrixserverlib.PDU) (*rooms.Event, error) {
	roomID := pdu.RoomID().String()
	prevStates := map[string][]gomatrixserverlib.PDU{}
	for _, id := range missing {
		state, auth, err := a.d.Remote.StateAt(ctx, origin, v, roomID, id)
		if err != nil {
			return nil, fetchVerdict(err)
		}
		prev, err := a.d.Remote.FetchEvent(ctx, origin, v, id)
		if err != nil {
			return nil, fetchVerdict(err)
		}
		prevStates[id] = withStateEvent(state, prev)
		chain = append(chain, auth...)
	}
	return a.d.Rooms.ReceiveWithState(ctx, pdu, prevStates, chain)
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
