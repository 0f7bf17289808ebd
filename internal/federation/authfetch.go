package federation

import (
	"context"
	"fmt"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/federation/remote"
)

// authFetchRounds bounds how far back fetchAuthEvents follows auth
// events this server lacks, one /event each.
const authFetchRounds = 8

// fetchAuthEvents gets the auth events this server lacks of an event
// from the server that sent it, as Synapse's
// _load_or_fetch_auth_events_for_event does: each with /event, then
// theirs in turn, or, failing that, the event's whole auth chain with
// /event_auth. They are checked (signatures, each allowed by its own
// auth events) and stored, so that the event itself can be checked: in
// a partial-state room most events name the membership of a sender this
// server has not been told of.
func (a *API) fetchAuthEvents(ctx context.Context, origin string, v gomatrixserverlib.IRoomVersion, pdu gomatrixserverlib.PDU, missing []string) error {
	roomID := pdu.RoomID().String()
	var chain gomatrixserverlib.EventJSONs
	seen := map[string]bool{}
	for round := 0; round < authFetchRounds && len(missing) > 0; round++ {
		var next []string
		for _, id := range missing {
			if seen[id] {
				continue
			}
			seen[id] = true
			ev, err := a.fetchEvent(ctx, origin, v, id)
			if err != nil {
				return a.fetchAuthChain(ctx, origin, v, pdu)
			}
			chain = append(chain, ev.JSON())
			known, err := a.d.Rooms.EventsByID(ctx, ev.AuthEventIDs())
			if err != nil {
				return err
			}
			for _, k := range known {
				if !seen[k.EventID()] {
					seen[k.EventID()] = true
					chain = append(chain, k.JSON())
				}
			}
			for _, aid := range ev.AuthEventIDs() {
				if !seen[aid] {
					next = append(next, aid)
				}
			}
		}
		missing = next
	}
	return a.storeAuthChain(ctx, origin, v, roomID, chain)
}

// fetchAuthChain gets the whole auth chain of an event from the server
// that sent it (/event_auth) and stores it, checked.
func (a *API) fetchAuthChain(ctx context.Context, origin string, v gomatrixserverlib.IRoomVersion, pdu gomatrixserverlib.PDU) error {
	roomID := pdu.RoomID().String()
	resp, err := a.d.Client.GetEventAuth(ctx, spec.ServerName(a.d.ServerName), spec.ServerName(origin), v.Version(), roomID, pdu.EventID())
	if err != nil {
		return fmt.Errorf("event_auth from %s: %w", origin, err)
	}
	return a.storeAuthChain(ctx, origin, v, roomID, resp.AuthEvents)
}

// storeAuthChain checks auth events fetched from origin and stores those
// that pass.
func (a *API) storeAuthChain(ctx context.Context, origin string, v gomatrixserverlib.IRoomVersion, roomID string, raw gomatrixserverlib.EventJSONs) error {
	checked := fclient.RespState{AuthEvents: raw}
	chain, _, err := gomatrixserverlib.CheckStateResponse(ctx, &checked, v.Version(), a.d.KeyRing, a.d.Remote.EventProvider(origin), remote.UserIDForSender)
	if err != nil {
		return fmt.Errorf("auth events from %s: %w", origin, err)
	}
	return a.d.Rooms.StoreAuthChain(ctx, roomID, chain)
}
