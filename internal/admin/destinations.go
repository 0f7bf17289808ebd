package admin

import (
	"net/http"
	"slices"
	"sort"
	"strconv"

	"github.com/myelin-chat/myelin/internal/federation/remote"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// Synapse's federation admin API (docs/usage/administration/admin_api/
// federation.md), over the federation sender's back-off state and the
// stream position of the last event it delivered to each server
// (last_successful_stream_ordering, null before any) and to each room
// (a destination room's stream_ordering, 0 before any).

func (o *Operations) destinationRoutes() []httpapi.Route {
	const p = "/_synapse/admin/v1/federation/destinations"
	return []httpapi.Route{
		{Method: http.MethodGet, Path: p, Handler: o.listDestinations},
		{Method: http.MethodGet, Path: p + "/{destination}", Handler: o.getDestination},
		{Method: http.MethodGet, Path: p + "/{destination}/rooms", Handler: o.destinationRooms},
		{Method: http.MethodPost, Path: p + "/{destination}/reset_connection", Handler: o.resetConnection},
	}
}

func destinationJSON(d remote.RetryTimings) map[string]any {
	var failure any
	if d.FailureTS != 0 {
		failure = d.FailureTS
	}
	var last any
	if d.LastSuccessfulStreamOrdering != 0 {
		last = d.LastSuccessfulStreamOrdering
	}
	// queued_pdus and queued_edus are Myelin's own: what waits in the
	// federation queue for the destination (myelin admin federation).
	// Clients of Synapse's API ignore fields they do not know.
	return map[string]any{"destination": d.Destination, "retry_last_ts": d.RetryLastTS, "retry_interval": d.RetryInterval,
		"failure_ts": failure, "last_successful_stream_ordering": last,
		"queued_pdus": d.Queued.PDUs, "queued_edus": d.Queued.EDUs}
}

// destinationOrders are the order_by values Synapse accepts, each a key
// (ties broken by name).
var destinationOrders = map[string]func(remote.RetryTimings) int64{
	"destination":                     nil,
	"retry_last_ts":                   func(d remote.RetryTimings) int64 { return d.RetryLastTS },
	"retry_interval":                  func(d remote.RetryTimings) int64 { return d.RetryInterval },
	"failure_ts":                      func(d remote.RetryTimings) int64 { return d.FailureTS },
	"last_successful_stream_ordering": func(d remote.RetryTimings) int64 { return d.LastSuccessfulStreamOrdering },
}

func (o *Operations) allDestinations(r *http.Request) ([]remote.RetryTimings, error) {
	if o.destinations == nil {
		return nil, nil
	}
	return o.destinations.All(r.Context())
}

func (o *Operations) listDestinations(r *http.Request, _ *httpapi.Caller) (any, error) {
	from, limit, err := offsetPage(r)
	if err != nil {
		return nil, err
	}
	reverse, err := direction(r)
	if err != nil {
		return nil, err
	}
	orderBy := r.URL.Query().Get("order_by")
	if orderBy == "" {
		orderBy = "destination"
	}
	key, ok := destinationOrders[orderBy]
	if !ok {
		return nil, mxerr.InvalidParam("Unknown value for order_by: %s", orderBy)
	}
	all, err := o.allDestinations(r)
	if err != nil {
		return nil, err
	}
	sort.SliceStable(all, func(i, j int) bool {
		a, b := all[i], all[j]
		if reverse {
			a, b = b, a
		}
		if key != nil && key(a) != key(b) {
			return key(a) < key(b)
		}
		return a.Destination < b.Destination
	})
	lo, hi, next := window(len(all), from, limit)
	out := make([]map[string]any, 0, hi-lo)
	for _, d := range all[lo:hi] {
		out = append(out, destinationJSON(d))
	}
	resp := map[string]any{"destinations": out, "total": len(all)}
	if next >= 0 {
		resp["next_token"] = strconv.Itoa(next)
	}
	return resp, nil
}

func (o *Operations) getDestination(r *http.Request, _ *httpapi.Caller) (any, error) {
	if o.destinations == nil {
		return nil, mxerr.NotFound("Unknown destination")
	}
	d, err := o.destinations.Get(r.Context(), r.PathValue("destination"))
	if err != nil {
		return nil, err
	}
	return destinationJSON(d), nil
}

func (o *Operations) destinationRooms(r *http.Request, _ *httpapi.Caller) (any, error) {
	from, limit, err := offsetPage(r)
	if err != nil {
		return nil, err
	}
	reverse, err := direction(r)
	if err != nil {
		return nil, err
	}
	if o.destinations == nil {
		return nil, mxerr.NotFound("Unknown destination")
	}
	rooms, err := o.destinations.Rooms(r.Context(), r.PathValue("destination"))
	if err != nil {
		return nil, err
	}
	if reverse {
		slices.Reverse(rooms)
	}
	lo, hi, next := window(len(rooms), from, limit)
	out := make([]map[string]any, 0, hi-lo)
	for _, room := range rooms[lo:hi] {
		out = append(out, map[string]any{"room_id": room.RoomID, "stream_ordering": room.StreamOrdering})
	}
	resp := map[string]any{"rooms": out, "total": len(rooms)}
	if next >= 0 {
		resp["next_token"] = strconv.Itoa(next)
	}
	return resp, nil
}

func (o *Operations) resetConnection(r *http.Request, c *httpapi.Caller) (any, error) {
	dest := r.PathValue("destination")
	if o.destinations == nil {
		return nil, mxerr.NotFound("Unknown destination")
	}
	if err := o.destinations.ResetConnection(r.Context(), dest); err != nil {
		return nil, err
	}
	o.audit(r, c, "reset federation connection", "destination", dest)
	return map[string]any{}, nil
}
