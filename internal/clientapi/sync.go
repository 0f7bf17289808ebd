package clientapi

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/myelin-chat/myelin/internal/clientsync"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
)

// maxSyncTimeout caps long-polling, as reverse proxies time out anyway.
const maxSyncTimeout = 5 * time.Minute

func (a *API) registerSync(rt *httpapi.Router) {
	legacy(rt, httpapi.Route{Method: http.MethodGet, Path: "/sync", Auth: httpapi.AuthRequired, AllowGuest: true, Handler: a.syncHandler})
	// The legacy event stream, which clients still poll to peek into a
	// room (see clientsync.Events); Synapse also serves it under the
	// pre-r0 /api/v1 prefix.
	events := httpapi.Route{Method: http.MethodGet, Path: "/events", Auth: httpapi.AuthRequired, AllowGuest: true, Handler: a.eventStream}
	legacy(rt, events)
	events.Path = "/_matrix/client/api/v1/events"
	rt.Add(events)
	// Its companion, deprecated in r0 too, refused to guests as Synapse's.
	one := httpapi.Route{Method: http.MethodGet, Path: "/events/{eventId}", Auth: httpapi.AuthRequired, Handler: a.getOneEvent}
	legacy(rt, one)
	one.Path = "/_matrix/client/api/v1/events/{eventId}"
	rt.Add(one)
	legacy(rt, httpapi.Route{Method: http.MethodPost, Path: "/user/{userId}/filter", Auth: httpapi.AuthRequired, AllowGuest: true, Handler: a.createFilter})
	legacy(rt, httpapi.Route{Method: http.MethodGet, Path: "/user/{userId}/filter/{filterId}", Auth: httpapi.AuthRequired, AllowGuest: true, Handler: a.getFilter})
}

func (a *API) syncHandler(r *http.Request, c *httpapi.Caller) (any, error) {
	q := r.URL.Query()
	req := clientsync.Request{UserID: c.UserID, DeviceID: c.DeviceID, Viewer: a.viewer(c), FullState: q.Get("full_state") == "true",
		SetPresence: q.Get("set_presence")}
	// MSC4222's unstable parameter asks for the same section under its
	// unstable name; the stable one wins when both are given.
	stable, unstable := q.Get("use_state_after") == "true", q.Get("org.matrix.msc4222.use_state_after") == "true"
	req.UseStateAfter = stable || unstable
	if s := q.Get("since"); s != "" {
		tok, err := clientsync.ParseToken(s)
		if err != nil {
			return nil, err
		}
		req.Since = &tok
	}
	timeout, err := parseTimeout(q, 0)
	if err != nil {
		return nil, err
	}
	req.Timeout = timeout
	switch p := q.Get("set_presence"); p {
	case "", "online", "offline", "unavailable":
	default:
		return nil, mxerr.InvalidParam("Invalid set_presence %q", p)
	}
	f, err := a.filters.Resolve(r.Context(), c.Localpart, q.Get("filter"))
	if err != nil {
		return nil, err
	}
	req.Filter = f
	resp, err := a.sync.Sync(r.Context(), req)
	if err == nil && resp != nil && unstable && !stable {
		resp.UseUnstableStateAfter()
	}
	return resp, err
}

// parseTimeout reads a long poll's timeout (milliseconds), capped at
// maxSyncTimeout.
func parseTimeout(q url.Values, def time.Duration) (time.Duration, error) {
	t := q.Get("timeout")
	if t == "" {
		return def, nil
	}
	ms, err := strconv.ParseInt(t, 10, 64)
	if err != nil || ms < 0 {
		return 0, mxerr.InvalidParam("timeout must be a non-negative integer")
	}
	return min(time.Duration(ms)*time.Millisecond, maxSyncTimeout), nil
}

// eventStream serves GET /events as Synapse does: room_id (required of
// guests), from (a sync or pagination token; now when absent), timeout
// (30 s by default), limit (10); the answer's end is the next from.
func (a *API) eventStream(r *http.Request, c *httpapi.Caller) (any, error) {
	q := r.URL.Query()
	req := clientsync.EventsRequest{UserID: c.UserID, RoomID: q.Get("room_id")}
	if c.IsGuest && req.RoomID == "" {
		return nil, mxerr.MissingParam("Guest users must specify room_id")
	}
	if f := q.Get("from"); f != "" {
		tok, err := clientsync.ParsePageToken(f)
		if err != nil {
			return nil, err
		}
		req.From = &tok
	}
	var err error
	if req.Timeout, err = parseTimeout(q, 30*time.Second); err != nil {
		return nil, err
	}
	if req.Limit, err = parseLimit(q, 10); err != nil {
		return nil, err
	}
	// A poll that may return nothing would only ever time out.
	req.Limit = max(req.Limit, 1)
	page, err := a.sync.Events(r.Context(), req)
	if err != nil {
		return nil, err
	}
	chunk, err := a.render.Render(r.Context(), page.Events, a.viewer(c), c.UserID, false)
	if err != nil {
		return nil, err
	}
	return map[string]any{"chunk": nonNil(chunk), "start": page.Start.String(), "end": page.End.String()}, nil
}

// getOneEvent serves GET /events/{eventId}: /rooms/{roomId}/event without
// the room, which the event names; 404 for an event the user may not see,
// as for a missing one.
func (a *API) getOneEvent(r *http.Request, c *httpapi.Caller) (any, error) {
	ev, err := a.rooms.Event(r.Context(), r.PathValue("eventId"))
	if err != nil {
		return nil, err
	}
	if ev, err = a.rooms.VisibleEvent(r.Context(), ev.RoomID().String(), ev.EventID(), c.UserID); err != nil {
		return nil, err
	}
	out, err := a.render.Render(r.Context(), []*rooms.Event{ev}, a.viewer(c), c.UserID, false)
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

func (a *API) createFilter(r *http.Request, c *httpapi.Caller) (any, error) {
	if r.PathValue("userId") != c.UserID {
		return nil, mxerr.Forbidden("Cannot create filters for other users")
	}
	var raw json.RawMessage
	if err := httpapi.ReadJSON(r, &raw); err != nil {
		return nil, err
	}
	id, err := a.filters.Create(r.Context(), c.Localpart, raw)
	if err != nil {
		return nil, err
	}
	return map[string]string{"filter_id": strconv.FormatInt(id, 10)}, nil
}

func (a *API) getFilter(r *http.Request, c *httpapi.Caller) (any, error) {
	if r.PathValue("userId") != c.UserID {
		return nil, mxerr.Forbidden("Cannot read other users' filters")
	}
	id, err := strconv.ParseInt(r.PathValue("filterId"), 10, 64)
	if err != nil {
		return nil, mxerr.NotFound("No such filter")
	}
	return a.filters.Get(r.Context(), c.Localpart, id)
}
