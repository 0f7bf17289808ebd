package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// Rooms is what the admin API reads of rooms: reported events and the
// names of their rooms.
type Rooms interface {
	Event(ctx context.Context, eventID string) (*rooms.Event, error)
	CurrentState(ctx context.Context, roomID string) (rooms.StateMap, error)
	StateEvent(ctx context.Context, state rooms.StateMap, typ, key string) (*rooms.Event, error)
}

// Reports is the storage of users' reports.
type Reports interface {
	EventReports(ctx context.Context, q store.EventReportQuery) ([]store.Report, int64, error)
	EventReport(ctx context.Context, id int64) (store.Report, error)
	DeleteEventReport(ctx context.Context, id int64) error
}

func (a *API) registerReports(rt *httpapi.Router) {
	const p = "/_synapse/admin/v1/event_reports"
	rt.Add(httpapi.Route{Method: http.MethodGet, Path: p, Auth: httpapi.AuthRequired, Handler: a.adminOnly(a.listEventReports)})
	rt.Add(httpapi.Route{Method: http.MethodGet, Path: p + "/{reportId}", Auth: httpapi.AuthRequired, Handler: a.adminOnly(a.getEventReport)})
	rt.Add(httpapi.Route{Method: http.MethodDelete, Path: p + "/{reportId}", Auth: httpapi.AuthRequired, Handler: a.adminOnly(a.deleteEventReport)})
}

// listEventReports is Synapse's GET /_synapse/admin/v1/event_reports:
// newest first unless dir=f, from an offset, 100 at a time by default,
// filtered by reporter (user_id) and room (room_id), each substrings.
func (a *API) listEventReports(r *http.Request, _ *httpapi.Caller) (any, error) {
	q := r.URL.Query()
	query := store.EventReportQuery{Limit: 100, Reporter: q.Get("user_id"), RoomID: q.Get("room_id")}
	var err error
	if query.From, err = nonNegative(q.Get("from"), 0, "from"); err != nil {
		return nil, err
	}
	if query.Limit, err = nonNegative(q.Get("limit"), 100, "limit"); err != nil {
		return nil, err
	}
	switch q.Get("dir") {
	case "", "b":
	case "f":
		query.Forwards = true
	default:
		return nil, mxerr.InvalidParam("Unknown direction: %s", q.Get("dir"))
	}
	reports, total, err := a.reports.EventReports(r.Context(), query)
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, 0, len(reports))
	for _, rep := range reports {
		entry, _, err := a.describe(r.Context(), rep)
		if err != nil {
			return nil, err
		}
		out = append(out, entry)
	}
	resp := map[string]any{"event_reports": out, "total": total}
	if int64(query.From+len(reports)) < total {
		resp["next_token"] = query.From + len(reports)
	}
	return resp, nil
}

// getEventReport is GET /_synapse/admin/v1/event_reports/{reportId}: the
// listing's fields and the event itself (event_json).
func (a *API) getEventReport(r *http.Request, _ *httpapi.Caller) (any, error) {
	rep, err := a.eventReport(r)
	if err != nil {
		return nil, err
	}
	entry, ev, err := a.describe(r.Context(), rep)
	if err != nil {
		return nil, err
	}
	entry["event_json"] = nil
	if ev != nil {
		entry["event_json"] = json.RawMessage(ev.JSON())
	}
	return entry, nil
}

func (a *API) deleteEventReport(r *http.Request, _ *httpapi.Caller) (any, error) {
	id, err := reportID(r)
	if err != nil {
		return nil, err
	}
	if err := a.reports.DeleteEventReport(r.Context(), id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, mxerr.NotFound("Event report not found")
		}
		return nil, err
	}
	return map[string]any{}, nil
}

func (a *API) eventReport(r *http.Request) (store.Report, error) {
	id, err := reportID(r)
	if err != nil {
		return store.Report{}, err
	}
	rep, err := a.reports.EventReport(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Report{}, mxerr.NotFound("Event report not found")
	}
	return rep, err
}

func reportID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("reportId"), 10, 64)
	if err != nil || id < 0 {
		return 0, mxerr.InvalidParam("The report_id parameter must be a string representing a positive integer.")
	}
	return id, nil
}

// describe renders a report as Synapse's admin API does: the reporter
// (user_id), the reported event's sender, the room's name and canonical
// alias (null when unset or the event is gone). It also returns the
// event, nil when this server no longer holds it.
func (a *API) describe(ctx context.Context, rep store.Report) (map[string]any, *rooms.Event, error) {
	entry := map[string]any{"id": rep.ID, "received_ts": rep.ReceivedTS, "room_id": rep.RoomID, "event_id": rep.EventID,
		"user_id": rep.Reporter, "reason": nil, "score": nil, "sender": nil, "name": nil, "canonical_alias": nil}
	if rep.Reason != "" {
		entry["reason"] = rep.Reason
	}
	if rep.Score != nil {
		entry["score"] = *rep.Score
	}
	if a.rooms == nil {
		return entry, nil, nil
	}
	ev, err := a.rooms.Event(ctx, rep.EventID)
	if err != nil {
		if _, ok := mxerr.As(err); ok || errors.Is(err, store.ErrNotFound) {
			ev = nil // purged or never held: the report stays readable
		} else {
			return nil, nil, err
		}
	}
	if ev != nil {
		entry["sender"] = ev.Sender()
	}
	state, err := a.rooms.CurrentState(ctx, rep.RoomID)
	if err != nil {
		if _, ok := mxerr.As(err); ok || errors.Is(err, store.ErrNotFound) {
			return entry, ev, nil
		}
		return nil, nil, err
	}
	for key, field := range map[string]string{spec.MRoomName: "name", spec.MRoomCanonicalAlias: "canonical_alias"} {
		sev, err := a.rooms.StateEvent(ctx, state, key, "")
		if err != nil || sev == nil {
			continue
		}
		var c struct {
			Name  string `json:"name"`
			Alias string `json:"alias"`
		}
		if json.Unmarshal(sev.Content(), &c) == nil && c.Name+c.Alias != "" {
			entry[field] = c.Name + c.Alias
		}
	}
	return entry, ev, nil
}

// nonNegative parses an optional query integer, def when absent.
func nonNegative(v string, def int, name string) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, mxerr.InvalidParam("Query parameter %s must be a non-negative integer", name)
	}
	return n, nil
}
