package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/reports"
	"github.com/myelin-chat/myelin/internal/rooms"
)

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
	query := reports.Query{Limit: 100, Reporter: q.Get("user_id"), RoomID: q.Get("room_id")}
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
	list, total, err := a.reports.List(r.Context(), query)
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, 0, len(list))
	for _, rep := range list {
		entry, _, err := a.describe(r.Context(), rep)
		if err != nil {
			return nil, err
		}
		out = append(out, entry)
	}
	resp := map[string]any{"event_reports": out, "total": total}
	if int64(query.From+len(list)) < total {
		resp["next_token"] = query.From + len(list)
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
	if err := a.reports.Delete(r.Context(), id); err != nil {
		return nil, err
	}
	return map[string]any{}, nil
}

func (a *API) eventReport(r *http.Request) (reports.Report, error) {
	id, err := reportID(r)
	if err != nil {
		return reports.Report{}, err
	}
	return a.reports.Get(r.Context(), id)
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
func (a *API) describe(ctx context.Context, rep reports.Report) (map[string]any, *rooms.Event, error) {
	entry := map[string]any{"id": rep.ID, "received_ts": rep.ReceivedTS, "room_id": rep.RoomID, "event_id": rep.EventID,
		"user_id": rep.Reporter, "reason": nil, "score": nil, "sender": nil, "name": nil, "canonical_alias": nil}
	if rep.Reason != "" {
		entry["reason"] = rep.Reason
	}
	if rep.Score != nil {
		entry["score"] = *rep.Score
	}
	d, err := a.reports.Describe(ctx, rep)
	if err != nil {
		return nil, nil, err
	}
	if d.Event != nil {
		entry["sender"] = d.Event.Sender()
	}
	for field, v := range map[string]string{"name": d.Name, "canonical_alias": d.CanonicalAlias} {
		if v != "" {
			entry[field] = v
		}
	}
	return entry, d.Event, nil
}

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
