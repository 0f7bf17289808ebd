package remote

import (
	"context"
	"fmt"
	"sync"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/ident"
	"github.com/myelin-chat/myelin/internal/rooms"
)

// BadAnswer is another server's failure to supply what was asked of it
// (unreachable, a refusal, an answer broken or failing its checks): a
// verdict on whatever depended on it. StateAt, AuthChain and FetchEvent
// return it for those, and this server's own failures (its database, a
// cancelled context) as they are, so that a caller can tell a decision
// from a failure to decide.
type BadAnswer struct{ Err error }

func (e *BadAnswer) Error() string { return e.Err.Error() }
func (e *BadAnswer) Unwrap() error { return e.Err }

func badAnswer(format string, args ...any) error {
	return &BadAnswer{fmt.Errorf(format, args...)}
}

// Room state and auth chains fetched from another server with the
// endpoints every server serves: /state_ids names the state at an event
// and its auth chain, /event fetches each event this server lacks, and
// /event_auth an event's auth chain. /state, which returns the events
// themselves, is only an optimisation for states of which many events
// are lacking, as in Synapse's _get_state_ids_after_missing_prev_event;
// some servers do not serve it, and then /event does the work.

const (
	// maxRemoteState bounds the event IDs a /state_ids answer may name
	// (state and auth chain together): a room's state is large, but a
	// server naming millions of events is not describing one.
	maxRemoteState = 200_000
	// eventFetchers is how many /event requests run at once for one
	// state: enough to fetch a gap's few hundred events quickly, few
	// enough not to flood the other server.
	eventFetchers = 8
	// bulkStateMin is how many events a state must lack before /state is
	// asked for it rather than /event for each.
	bulkStateMin = 100
)

// StateAt fetches the room state before eventID (and its auth
// chain) from server, and checks it as a /state answer would be checked:
// signatures, and every event authorised by its auth events.
func (f *Service) StateAt(ctx context.Context, server string, v gomatrixserverlib.IRoomVersion, roomID, eventID string) (state, authChain []gomatrixserverlib.PDU, err error) {
	ids, err := f.d.Client.LookupStateIDs(ctx, spec.ServerName(f.d.ServerName), spec.ServerName(server), roomID, eventID)
	if err != nil {
		return nil, nil, badAnswer("state_ids at %s from %s: %w", eventID, server, err)
	}
	if len(ids.StateEventIDs)+len(ids.AuthEventIDs) > maxRemoteState {
		return nil, nil, badAnswer("state_ids at %s from %s: %d events, more than %d", eventID, server,
			len(ids.StateEventIDs)+len(ids.AuthEventIDs), maxRemoteState)
	}
	all := append(append([]string{}, ids.StateEventIDs...), ids.AuthEventIDs...)
	for _, id := range all {
		// Not looked up: an ID no event can have (NUL, invalid UTF-8, too
		// long) is a broken answer, not a failure to decide.
		if err := ident.CheckID(id); err != nil {
			return nil, nil, badAnswer("state_ids at %s from %s: event ID %q: %w", eventID, server, id, err)
		}
	}
	if state, authChain, ok := f.remoteStateBulk(ctx, server, v, roomID, eventID, all); ok {
		return state, authChain, nil
	}
	evs, err := f.eventsFrom(ctx, server, v, roomID, all)
	if err != nil {
		return nil, nil, err
	}
	resp := &fclient.RespState{}
	for _, id := range ids.StateEventIDs {
		ev, ok := evs[id]
		if !ok {
			return nil, nil, badAnswer("state at %s from %s: state event %s could not be fetched", eventID, server, id)
		}
		resp.StateEvents = append(resp.StateEvents, ev.JSON())
	}
	for _, id := range ids.AuthEventIDs {
		// An auth chain event that could not be fetched is looked for
		// again, by the check below, only if some event needs it.
		if ev, ok := evs[id]; ok {
			resp.AuthEvents = append(resp.AuthEvents, ev.JSON())
		}
	}
	// CheckStateResponse returns the auth chain first, then the state.
	authChain, state, err = gomatrixserverlib.CheckStateResponse(ctx, resp, v.Version(), f.d.KeyRing, f.EventProvider(server), UserIDForSender)
	if err != nil {
		return nil, nil, badAnswer("state at %s from %s: %w", eventID, server, err)
	}
	return state, authChain, nil
}

// remoteStateBulk fetches the state at eventID with /state when this
// server lacks many of its events: one request for thousands of events
// costs less than one each (Synapse's heuristic in
// _get_state_ids_after_missing_prev_event: more than a tenth missing).
// It reports false, and the caller fetches the events one by one, when
// few are missing or the server does not serve /state.
func (f *Service) remoteStateBulk(ctx context.Context, server string, v gomatrixserverlib.IRoomVersion, roomID, eventID string, ids []string) (state, authChain []gomatrixserverlib.PDU, ok bool) {
	local, err := f.d.Rooms.EventsByID(ctx, ids)
	if err != nil {
		return nil, nil, false
	}
	lacking := len(ids) - len(local)
	if lacking < bulkStateMin || lacking*10 < len(ids) {
		return nil, nil, false
	}
	resp, err := f.d.Client.LookupState(ctx, spec.ServerName(f.d.ServerName), spec.ServerName(server), roomID, eventID, v.Version())
	if err == nil {
		authChain, state, err = gomatrixserverlib.CheckStateResponse(ctx, &resp, v.Version(), f.d.KeyRing, f.EventProvider(server), UserIDForSender)
	}
	if err != nil {
		f.d.Log.Info("federation: state in bulk, falling back to single events", "server", server, "event_id", eventID, "err", err)
		return nil, nil, false
	}
	return state, authChain, true
}

// AuthChain fetches an event's auth chain from server
// (/event_auth) and checks it: signatures, and each event authorised by
// its own auth events. Events that do not parse for the room version or
// belong to another room are dropped, as in any other answer.
func (f *Service) AuthChain(ctx context.Context, server string, v gomatrixserverlib.IRoomVersion, pdu gomatrixserverlib.PDU) ([]gomatrixserverlib.PDU, error) {
	roomID := pdu.RoomID().String()
	resp, err := f.d.Client.GetEventAuth(ctx, spec.ServerName(f.d.ServerName), spec.ServerName(server), v.Version(), roomID, pdu.EventID())
	if err != nil {
		return nil, badAnswer("event_auth of %s from %s: %w", pdu.EventID(), server, err)
	}
	if len(resp.AuthEvents) > maxRemoteState {
		return nil, badAnswer("event_auth of %s from %s: %d events, more than %d", pdu.EventID(), server, len(resp.AuthEvents), maxRemoteState)
	}
	var chain gomatrixserverlib.EventJSONs
	for _, raw := range resp.AuthEvents {
		ev, err := rooms.ParsePDU(v, raw)
		if err != nil || ev.RoomID().String() != roomID {
			continue
		}
		chain = append(chain, ev.JSON())
	}
	// As auth events (a state list may not repeat a type and state key,
	// which an auth chain does), each checked against the others.
	checked, _, err := gomatrixserverlib.CheckStateResponse(ctx, &fclient.RespState{AuthEvents: chain},
		v.Version(), f.d.KeyRing, f.EventProvider(server), UserIDForSender)
	if err != nil {
		return nil, badAnswer("event_auth of %s from %s: %w", pdu.EventID(), server, err)
	}
	return checked, nil
}

// eventsFrom returns the events named, those this server holds from its
// store and the others fetched from server (/event, signatures checked).
// Events that cannot be fetched are left out; the caller decides whether
// it can do without them.
func (f *Service) eventsFrom(ctx context.Context, server string, v gomatrixserverlib.IRoomVersion, roomID string, ids []string) (map[string]gomatrixserverlib.PDU, error) {
	out := map[string]gomatrixserverlib.PDU{}
	uniq := make([]string, 0, len(ids))
	seen := map[string]bool{}
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			uniq = append(uniq, id)
		}
	}
	local, err := f.d.Rooms.EventsByID(ctx, uniq)
	if err != nil {
		return nil, err
	}
	for _, ev := range local {
		if ev.RoomID().String() == roomID {
			out[ev.EventID()] = ev.PDU
		}
	}
	var lacking []string
	for _, id := range uniq {
		if _, ok := out[id]; !ok {
			lacking = append(lacking, id)
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	work := make(chan string)
	for range min(eventFetchers, len(lacking)) {
		wg.Go(func() {
			for id := range work {
				ev, err := f.FetchEvent(ctx, server, v, id)
				if err == nil && ev.RoomID().String() != roomID {
					err = fmt.Errorf("event %s from %s: of room %s", id, server, ev.RoomID().String())
				}
				if err != nil {
					f.d.Log.Info("federation: fetching an event", "server", server, "err", err)
					continue
				}
				mu.Lock()
				out[id] = ev
				mu.Unlock()
			}
		})
	}
	for _, id := range lacking {
		if ctx.Err() != nil {
			break
		}
		work <- id
	}
	close(work)
	wg.Wait()
	return out, ctx.Err()
}

// FetchEvent gets one event from a server (/event) and checks its
// signatures.
func (f *Service) FetchEvent(ctx context.Context, server string, v gomatrixserverlib.IRoomVersion, id string) (gomatrixserverlib.PDU, error) {
	txn, err := f.d.Client.GetEvent(ctx, spec.ServerName(f.d.ServerName), spec.ServerName(server), id)
	if err != nil {
		return nil, badAnswer("event %s from %s: %w", id, server, err)
	}
	if len(txn.PDUs) != 1 {
		return nil, badAnswer("event %s from %s: %d events in the answer", id, server, len(txn.PDUs))
	}
	pdu, err := rooms.ParsePDU(v, txn.PDUs[0])
	if err != nil {
		return nil, badAnswer("event %s from %s: %w", id, server, err)
	}
	if pdu.EventID() != id {
		return nil, badAnswer("event %s from %s: got %s instead", id, server, pdu.EventID())
	}
	if err := gomatrixserverlib.VerifyEventSignatures(ctx, pdu, f.d.KeyRing, UserIDForSender); err != nil {
		return nil, badAnswer("event %s from %s: %w", id, server, err)
	}
	return pdu, nil
}
