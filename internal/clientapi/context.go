package clientapi

import (
	"context"
	"net/http"
	"slices"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/clientevent"
	"github.com/myelin-chat/myelin/internal/clientsync"
	"github.com/myelin-chat/myelin/internal/filter"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
)

// Navigating a room's history: /context around an event,
// /timestamp_to_event to find one by time, and the room /initialSync.

func (a *API) registerContext(rt *httpapi.Router) {
	legacy(rt, httpapi.Route{Method: http.MethodGet, Path: "/rooms/{roomId}/context/{eventId}", Auth: httpapi.AuthRequired, AllowGuest: true, Handler: a.eventContext})
	legacy(rt, httpapi.Route{Method: http.MethodGet, Path: "/rooms/{roomId}/initialSync", Auth: httpapi.AuthRequired, AllowGuest: true, Handler: a.roomInitialSync})
	// matrix-js-sdk falls back to MSC3030's path when /v1 is refused.
	v1(rt, httpapi.Route{Method: http.MethodGet, Path: "/rooms/{roomId}/timestamp_to_event", Auth: httpapi.AuthRequired, Handler: a.timestampToEvent},
		"/org.matrix.msc3030/rooms/{roomId}/timestamp_to_event")
}

// eventContext serves GET /context/{eventId}: up to limit events around
// the event (half before, as Synapse), the state at the last event
// returned, and /messages tokens on either side.
func (a *API) eventContext(r *http.Request, c *httpapi.Caller) (any, error) {
	ctx := r.Context()
	q := r.URL.Query()
	roomID := r.PathValue("roomId")
	limit, err := parseLimit(q, 10)
	if err != nil {
		return nil, err
	}
	rf := &filter.RoomEventFilter{}
	if f := q.Get("filter"); f != "" {
		if err := a.filters.CheckSize(len(f)); err != nil {
			return nil, err
		}
		if rf, err = filter.ParseRoomEventFilter([]byte(f)); err != nil {
			return nil, err
		}
	}
	ra, err := a.rooms.ReadAccess(ctx, roomID, c.UserID)
	if err != nil {
		return nil, err
	}
	upper := ra.UpTo(a.rooms.Stream().Current())
	ev, err := a.rooms.VisibleEvent(ctx, roomID, r.PathValue("eventId"), c.UserID)
	if err != nil {
		return nil, err
	}
	if ev.StreamPos == 0 || ev.StreamPos > upper {
		return nil, mxerr.NotFound("Event not found")
	}
	w, err := a.rooms.ContextWindow(ctx, ev, limit, func(ctx context.Context, from int64, n int, backwards bool) ([]*rooms.Event, error) {
		evs, next, more, err := a.paginate(ctx, roomID, c.UserID, from, noBound, upper, n, backwards, rf)
		if err == nil && backwards && a.federation != nil {
			// The events before it may lie in a hole this server has
			// not filled yet: filled as /messages fills them.
			evs, _, _, err = a.fillHoles(ctx, roomID, c.UserID, evs, from, noBound, next, more, upper, n, rf)
		}
		return evs, err
	}, rf.LazyLoadMembers, func(ev *rooms.Event) bool {
		return rf.Allows(ev.Type(), ev.Sender(), roomID, ev.HasURL)
	})
	if err != nil {
		return nil, err
	}
	return clientsync.RenderContext(ctx, a.render, w, a.viewer(c), c.UserID)
}

// nonNil keeps empty lists rendering as [] rather than null.
func nonNil(evs []clientevent.Event) []clientevent.Event {
	if evs == nil {
		return []clientevent.Event{}
	}
	return evs
}

// timestampToEvent serves GET /timestamp_to_event: the visible event
// closest to ts in the direction asked, ts included.
func (a *API) timestampToEvent(r *http.Request, c *httpapi.Caller) (any, error) {
	ctx := r.Context()
	q := r.URL.Query()
	roomID := r.PathValue("roomId")
	tsParam := q.Get("ts")
	ts, backwards, err := httpapi.TimestampQuery(q)
	if err != nil {
		return nil, err
	}
	ra, err := a.rooms.ReadAccess(ctx, roomID, c.UserID)
	if err != nil {
		return nil, err
	}
	upper := ra.UpTo(a.rooms.Stream().Current())
	eventID, originTS, ok, err := a.eventNearTimestamp(ctx, roomID, c.UserID, ts, upper, backwards)
	if err != nil {
		return nil, err
	}
	if ok {
		return map[string]any{"event_id": eventID, "origin_server_ts": originTS}, nil
	}
	dir := "forward"
	if backwards {
		dir = "backward"
	}
	return nil, mxerr.NotFound("Unable to find event from %s in %s direction", tsParam, dir)
}

// eventNearTimestamp is the event closest to ts in one direction: the
// visible one here, or, as Synapse does, one the room's other servers
// know when there is none here or when a forward search starts in
// history this server lacks (before its oldest event, with history
// continuing elsewhere: Synapse's "next to a backward gap"); then the
// closer of the two answers wins.
func (a *API) eventNearTimestamp(ctx context.Context, roomID, viewer string, ts, upper int64, backwards bool) (eventID string, originTS int64, ok bool, err error) {
	ev, err := a.rooms.EventNear(ctx, roomID, viewer, ts, upper, backwards)
	if err != nil {
		return "", 0, false, err
	}
	if ev != nil {
		eventID, originTS, ok = ev.EventID(), int64(ev.OriginServerTS()), true
	}
	if a.federation == nil {
		return eventID, originTS, ok, nil
	}
	if ok {
		if backwards {
			return eventID, originTS, ok, nil
		}
		gap, err := a.beforeLocalHistory(ctx, roomID, ts, upper)
		if err != nil || !gap {
			return eventID, originTS, ok, err
		}
	}
	rID, rTS, rOK, err := a.federation.TimestampToEvent(ctx, roomID, ts, backwards)
	if err != nil && !ok {
		return "", 0, false, err
	}
	if rOK && (!ok || absDiff(rTS, ts) < absDiff(originTS, ts)) {
		return rID, rTS, true, nil
	}
	return eventID, originTS, ok, nil
}

// beforeLocalHistory reports whether ts is before every event stored
// here while the room's history continues on other servers.
func (a *API) beforeLocalHistory(ctx context.Context, roomID string, ts, upper int64) (bool, error) {
	points, err := a.rooms.BackfillPoints(ctx, roomID)
	if err != nil || len(points) == 0 {
		return false, err
	}
	_, _, earlier, err := a.rooms.FirstEventNear(ctx, roomID, ts, upper, true)
	return !earlier, err
}

func absDiff(a, b int64) int64 {
	if a > b {
		return a - b
	}
	return b - a
}

// roomInitialSync serves the room /initialSync: the room's latest
// messages and its state, as /messages and /state would show them (up to
// the leave for users who left; peeking for world-readable rooms).
func (a *API) roomInitialSync(r *http.Request, c *httpapi.Caller) (any, error) {
	ctx := r.Context()
	roomID := r.PathValue("roomId")
	limit, err := parseLimit(r.URL.Query(), 10)
	if err != nil {
		return nil, err
	}
	ra, err := a.rooms.ReadAccess(ctx, roomID, c.UserID)
	if err != nil {
		return nil, err
	}
	state, upper := ra.State, ra.UpTo(a.rooms.Stream().Current())
	membership, err := a.rooms.MembershipIn(ctx, state, c.UserID)
	if err != nil {
		return nil, err
	}
	switch membership {
	case spec.Join, spec.Leave, spec.Ban:
	default:
		// Peeking into a world-readable room: Synapse answers "join".
		membership = spec.Join
	}
	evs, _, _, err := a.paginate(ctx, roomID, c.UserID, upper, noBound, upper, limit, true, &filter.RoomEventFilter{})
	if err != nil {
		return nil, err
	}
	slices.Reverse(evs)
	start := upper
	if len(evs) > 0 {
		start = evs[0].StreamPos - 1
	}
	stateEvs, err := a.stateList(ctx, state, func(roommodel.StateKey) bool { return true })
	if err != nil {
		return nil, err
	}
	rendered, err := a.render.Render(ctx, evs, a.viewer(c), c.UserID, false)
	if err != nil {
		return nil, err
	}
	renderedState, err := a.render.RenderState(ctx, stateEvs, a.viewer(c), c.UserID, false)
	if err != nil {
		return nil, err
	}
	visibility := "private"
	if pub, err := a.dir.Published(ctx, roomID); err != nil {
		return nil, err
	} else if pub {
		visibility = "public"
	}
	return map[string]any{
		"room_id":    roomID,
		"membership": membership,
		"messages": map[string]any{
			"chunk": nonNil(rendered),
			"start": clientsync.Token{Events: start}.String(),
			"end":   clientsync.Token{Events: upper}.String(),
		},
		"state":        nonNil(renderedState),
		"visibility":   visibility,
		"presence":     []any{},
		"receipts":     []any{},
		"account_data": []any{},
	}, nil
}
