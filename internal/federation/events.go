package federation

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strconv"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
)

// The endpoints through which other servers read rooms' events: one
// event, the state at an event, auth chains, backfill, the events
// missing between two points, and the event nearest a time.

// Limits Synapse puts on what one request may ask for.
const (
	maxBackfill          = 100
	defaultMissingEvents = 10
	maxMissingEvents     = 20
)

const federationV1 = "/_matrix/federation/v1"

func (a *API) registerEvents(rt *httpapi.Router) {
	get := func(path string, h func(*Request) (any, error)) {
		rt.Add(httpapi.Route{Method: http.MethodGet, Path: federationV1 + path, Handler: a.signed(h)})
	}
	get("/event/{eventId}", a.getEvent)
	get("/state/{roomId}", a.getState)
	get("/state_ids/{roomId}", a.getStateIDs)
	get("/event_auth/{roomId}/{eventId}", a.getEventAuth)
	get("/backfill/{roomId}", a.backfill)
	get("/timestamp_to_event/{roomId}", a.timestampToEvent)
	rt.Add(httpapi.Route{Method: http.MethodPost, Path: federationV1 + "/get_missing_events/{roomId}", Handler: a.signed(a.getMissingEvents)})
}

// checkRoomAccess lets a server read a room's events only while it is in
// the room (a joined member in the current state, Synapse's
// assert_host_in_room) and the room's server ACL allows it.
func (a *API) checkRoomAccess(ctx context.Context, roomID, origin string) error {
	if _, err := a.roomVersion(ctx, roomID); err != nil {
		return err
	}
	in, err := a.d.Rooms.ServerInRoom(ctx, roomID, origin)
	if err != nil {
		return err
	}
	if !in {
		return mxerr.Forbidden("Host not in room.")
	}
	return a.checkACL(ctx, roomID, origin)
}

// transaction wraps PDUs the way /event and /backfill answer.
func (a *API) transaction(pdus []gomatrixserverlib.PDU) gomatrixserverlib.Transaction {
	return gomatrixserverlib.Transaction{Origin: spec.ServerName(a.d.ServerName), OriginServerTS: spec.AsTimestamp(a.now()),
		PDUs: rawPDUs(pdus)}
}

func rawPDUs(pdus []gomatrixserverlib.PDU) []json.RawMessage {
	out := make([]json.RawMessage, len(pdus))
	for i, p := range pdus {
		out[i] = p.JSON()
	}
	return out
}

// getEvent serves GET /event/{eventId}: the event, redacted when the
// server may not see it (Synapse's get_persisted_pdu), to servers in its
// room.
func (a *API) getEvent(r *Request) (any, error) {
	ctx := r.Context()
	ev, err := a.d.Rooms.Event(ctx, r.PathValue("eventId"))
	if err != nil {
		return nil, err
	}
	if err := a.checkRoomAccess(ctx, ev.RoomID().String(), r.Origin); err != nil {
		return nil, err
	}
	pdus, err := a.d.Rooms.EventsForServer(ctx, r.Origin, []*rooms.Event{ev})
	if err != nil {
		return nil, err
	}
	return a.transaction(pdus), nil
}

// eventInRoom loads an event of a room for the state and auth endpoints;
// M_NOT_FOUND for events of other rooms and rejected events, whose state
// the server does not vouch for (Synapse's get_event without
// allow_rejected).
func (a *API) eventInRoom(ctx context.Context, roomID, eventID string) (*rooms.Event, error) {
	if eventID == "" {
		return nil, mxerr.MissingParam("Missing event_id parameter")
	}
	evs, err := a.d.Rooms.EventsByID(ctx, []string{eventID})
	if err != nil {
		return nil, err
	}
	if len(evs) == 0 || evs[0].RoomID().String() != roomID || evs[0].Status == roommodel.Rejected {
		return nil, mxerr.NotFound("Event %s not found in room %s", eventID, roomID)
	}
	return evs[0], nil
}

// stateAt is the state at an event as the spec's /state means it: the
// state before the event (as Synapse's get_state_ids_for_pdu), with the
// auth chain of that state. The events are passed on as stored, not
// parsed (issue 14: a joining server's resync asks for tens of
// thousands).
func (a *API) stateAt(r *Request) (state, chain []rooms.RawEvent, err error) {
	ctx := r.Context()
	roomID := r.PathValue("roomId")
	if err := a.checkRoomAccess(ctx, roomID, r.Origin); err != nil {
		return nil, nil, err
	}
	ev, err := a.eventInRoom(ctx, roomID, r.URL.Query().Get("event_id"))
	if err != nil {
		return nil, nil, err
	}
	if !ev.HasState() {
		return nil, nil, mxerr.NotFound("State not known at event %s", ev.EventID())
	}
	before, err := a.d.Rooms.StateBefore(ctx, ev)
	if err != nil {
		return nil, nil, err
	}
	// A stable order (the order the events were stored in) keeps answers
	// comparable; the spec asks for none.
	nids := slices.Sorted(maps.Values(before))
	if state, err = a.d.Rooms.EventJSONByNID(ctx, nids); err != nil {
		return nil, nil, err
	}
	var authIDs []string
	for _, s := range state {
		authIDs = append(authIDs, s.AuthEventIDs()...)
	}
	chain, err = a.d.Rooms.AuthChainJSON(ctx, authIDs)
	return state, chain, err
}

func (a *API) getState(r *Request) (any, error) {
	state, chain, err := a.stateAt(r)
	if err != nil {
		return nil, err
	}
	return rawStateAnswer(chain, state), nil
}

// rawStateAnswer encodes a /state answer ({"auth_chain", "pdus"}) by
// hand, as sendJoinAnswer does.
func rawStateAnswer(chain, state []rooms.RawEvent) httpapi.RawJSON {
	b := newRawAnswer(32, rawEventJSON, chain, state)
	b.WriteString(`{"auth_chain":`)
	writeList(b, chain, rawEventJSON)
	b.WriteString(`,"pdus":`)
	writeList(b, state, rawEventJSON)
	b.WriteByte('}')
	return b.Bytes()
}

func rawEventJSON(ev rooms.RawEvent) []byte { return ev.JSON }

func (a *API) getStateIDs(r *Request) (any, error) {
	state, chain, err := a.stateAt(r)
	if err != nil {
		return nil, err
	}
	return fclient.RespStateIDs{StateEventIDs: rawEventIDs(state), AuthEventIDs: rawEventIDs(chain)}, nil
}

func rawEventIDs(evs []rooms.RawEvent) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

// getEventAuth serves GET /event_auth: the event's auth chain, its auth
// events and theirs, the event itself left out.
func (a *API) getEventAuth(r *Request) (any, error) {
	ctx := r.Context()
	roomID := r.PathValue("roomId")
	if err := a.checkRoomAccess(ctx, roomID, r.Origin); err != nil {
		return nil, err
	}
	ev, err := a.eventInRoom(ctx, roomID, r.PathValue("eventId"))
	if err != nil {
		return nil, err
	}
	chain, err := a.d.Rooms.AuthChainJSON(ctx, ev.AuthEventIDs())
	if err != nil {
		return nil, err
	}
	auth := make(gomatrixserverlib.EventJSONs, len(chain))
	for i, c := range chain {
		auth[i] = spec.RawJSON(c.JSON)
	}
	return fclient.RespEventAuth{AuthEvents: auth}, nil
}

// backfill serves GET /backfill: the events from those named in v back
// along prev_events, deepest first and breadth first (Synapse's
// get_backfill_events, the named events included), at most limit (capped
// at 100), redacted where the server may not see them.
func (a *API) backfill(r *Request) (any, error) {
	ctx := r.Context()
	roomID := r.PathValue("roomId")
	q := r.URL.Query()
	from := q["v"]
	if len(from) == 0 {
		return nil, mxerr.MissingParam("Missing v parameter")
	}
	if q.Get("limit") == "" {
		return nil, mxerr.MissingParam("Missing limit parameter")
	}
	limit, err := strconv.Atoi(q.Get("limit"))
	if err != nil || limit < 0 {
		return nil, mxerr.InvalidParam("limit must be a non-negative integer")
	}
	if err := a.checkRoomAccess(ctx, roomID, r.Origin); err != nil {
		return nil, err
	}
	evs, err := a.walkBackfill(ctx, roomID, from, min(limit, maxBackfill))
	if err != nil {
		return nil, err
	}
	pdus, err := a.d.Rooms.EventsForServer(ctx, r.Origin, evs)
	if err != nil {
		return nil, err
	}
	return a.transaction(pdus), nil
}

// walkBackfill walks prev_events from the events named, always taking
// the deepest event known next. Rejected events are walked through but
// not returned.
func (a *API) walkBackfill(ctx context.Context, roomID string, from []string, limit int) ([]*rooms.Event, error) {
	seen := map[string]bool{}
	var frontier []*rooms.Event
	enqueue := func(ids []string) error {
		var want []string
		for _, id := range ids {
			if !seen[id] {
				seen[id] = true
				want = append(want, id)
			}
		}
		evs, err := a.d.Rooms.EventsByID(ctx, want)
		for _, ev := range evs {
			if ev.RoomID().String() == roomID {
				frontier = append(frontier, ev)
			}
		}
		return err
	}
	if err := enqueue(from); err != nil {
		return nil, err
	}
	out := []*rooms.Event{}
	for len(frontier) > 0 && len(out) < limit {
		// The deepest first; among equals the one stored last.
		i := 0
		for j, ev := range frontier {
			if ev.Depth() > frontier[i].Depth() || ev.Depth() == frontier[i].Depth() && ev.NID > frontier[i].NID {
				i = j
			}
		}
		ev := frontier[i]
		frontier = slices.Delete(frontier, i, i+1)
		if ev.Status != roommodel.Rejected {
			out = append(out, ev)
		}
		if err := enqueue(ev.PrevEventIDs()); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// getMissingEvents serves POST /get_missing_events: the events before
// latest_events (not included) back to earliest_events, at most limit
// (default 10, capped at 20 as Synapse), none shallower than min_depth,
// oldest first, redacted where the server may not see them.
func (a *API) getMissingEvents(r *Request) (any, error) {
	ctx := r.Context()
	roomID := r.PathValue("roomId")
	var body struct {
		Limit          *int     `json:"limit"`
		MinDepth       int64    `json:"min_depth"`
		EarliestEvents []string `json:"earliest_events"`
		LatestEvents   []string `json:"latest_events"`
	}
	if err := httpapi.DecodeObject(r.Content, &body); err != nil {
		return nil, err
	}
	limit := defaultMissingEvents
	if body.Limit != nil {
		limit = min(max(*body.Limit, 0), maxMissingEvents)
	}
	if err := a.checkRoomAccess(ctx, roomID, r.Origin); err != nil {
		return nil, err
	}
	evs, err := a.walkMissing(ctx, roomID, body.EarliestEvents, body.LatestEvents, body.MinDepth, limit)
	if err != nil {
		return nil, err
	}
	pdus, err := a.d.Rooms.EventsForServer(ctx, r.Origin, evs)
	if err != nil {
		return nil, err
	}
	return fclient.RespMissingEvents{Events: gomatrixserverlib.EventJSONs(toRawJSON(pdus))}, nil
}

// walkMissing walks prev_events breadth first from latest, stopping at
// earliest, as Synapse's _get_missing_events, and returns what it found
// oldest first.
func (a *API) walkMissing(ctx context.Context, roomID string, earliest, latest []string, minDepth int64, limit int) ([]*rooms.Event, error) {
	seen := map[string]bool{}
	for _, id := range earliest {
		seen[id] = true
	}
	var found []*rooms.Event
	front := slices.DeleteFunc(slices.Clone(latest), func(id string) bool { return seen[id] })
	for len(front) > 0 && len(found) < limit {
		evs, err := a.d.Rooms.EventsByID(ctx, front)
		if err != nil {
			return nil, err
		}
		var next []string
		for _, ev := range evs {
			if ev.RoomID().String() != roomID {
				continue
			}
			for _, p := range ev.PrevEventIDs() {
				if !seen[p] {
					seen[p] = true
					next = append(next, p)
				}
			}
		}
		prevs, err := a.d.Rooms.EventsByID(ctx, next)
		if err != nil {
			return nil, err
		}
		front = front[:0]
		for _, p := range prevs {
			if p.RoomID().String() != roomID || p.Depth() < minDepth || len(found) >= limit {
				continue
			}
			front = append(front, p.EventID())
			if p.Status != roommodel.Rejected {
				found = append(found, p)
			}
		}
	}
	slices.Reverse(found)
	return found, nil
}

func toRawJSON(pdus []gomatrixserverlib.PDU) []spec.RawJSON {
	out := make([]spec.RawJSON, len(pdus))
	for i, p := range pdus {
		out[i] = p.JSON()
	}
	return out
}

// timestampToEvent serves GET /timestamp_to_event: the event closest to
// ts in the direction asked, ts included, as the client API's lookup
// finds it. Synapse checks only the room's server ACL here, the answer
// being an event ID and a time.
func (a *API) timestampToEvent(r *Request) (any, error) {
	ctx := r.Context()
	roomID := r.PathValue("roomId")
	q := r.URL.Query()
	ts, backwards, err := httpapi.TimestampQuery(q)
	if err != nil {
		return nil, err
	}
	if _, err := a.roomVersion(ctx, roomID); err != nil {
		return nil, err
	}
	if err := a.checkACL(ctx, roomID, r.Origin); err != nil {
		return nil, err
	}
	eventID, originTS, ok, err := a.d.Rooms.FirstEventNear(ctx, roomID, ts, a.d.Rooms.Stream().Current(), backwards)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, mxerr.NotFound("Unable to find event from %d in direction %s", ts, q.Get("dir"))
	}
	return map[string]any{"event_id": eventID, "origin_server_ts": originTS}, nil
}
