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

// Synapse's three report APIs, one per kind of report, over one inbox:
// event_reports (list, read, delete), room_reports (list and read in
// Synapse; Myelin also deletes) and user_reports (list, read, delete).
// Myelin's own /_myelin/admin/v1/reports (reportinbox.go) lists all
// three together and resolves them.
func (a *API) registerReports(rt *httpapi.Router) {
	const p = "/_synapse/admin/v1"
	for _, r := range []struct {
		path string
		kind string
		list httpapi.Handler
	}{
		{p + "/event_reports", reports.KindEvent, a.listEventReports},
		{p + "/room_reports", reports.KindRoom, a.listRoomReports},
		{p + "/user_reports", reports.KindUser, a.listUserReports},
	} {
		rt.Add(httpapi.Route{Method: http.MethodGet, Path: r.path, Auth: httpapi.AuthRequired, Handler: a.adminOnly(r.list)})
		rt.Add(httpapi.Route{Method: http.MethodGet, Path: r.path + "/{reportId}", Auth: httpapi.AuthRequired, Handler: a.adminOnly(a.getReportOf(r.kind))})
		rt.Add(httpapi.Route{Method: http.MethodDelete, Path: r.path + "/{reportId}", Auth: httpapi.AuthRequired, Handler: a.adminOnly(a.deleteReportOf(r.kind))})
	}
	a.registerReportInbox(rt)
}

// pageParams reads Synapse's offset paging: from (an offset), limit
// (100 by default) and dir (b, newest first, by default; or f).
func pageParams(r *http.Request, query *reports.Query) error {
	q := r.URL.Query()
	var err error
	if query.From, err = nonNegative(q.Get("from"), 0, "from"); err != nil {
		return err
	}
	if query.Limit, err = nonNegative(q.Get("limit"), 100, "limit"); err != nil {
		return err
	}
	switch q.Get("dir") {
	case "", "b":
	case "f":
		query.Forwards = true
	default:
		return mxerr.InvalidParam("Unknown direction: %s", q.Get("dir"))
	}
	return nil
}

// offsetPage lists a page of reports, rendered by render, under key,
// with total and, when more follow, next_token (the next offset).
func (a *API) offsetPage(r *http.Request, query reports.Query, key string, render func(reports.Report) (map[string]any, error)) (any, error) {
	list, total, err := a.reports.List(r.Context(), query)
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, 0, len(list))
	for _, rep := range list {
		entry, err := render(rep)
		if err != nil {
			return nil, err
		}
		out = append(out, entry)
	}
	resp := map[string]any{key: out, "total": total}
	if int64(query.From+len(list)) < total {
		resp["next_token"] = query.From + len(list)
	}
	return resp, nil
}

// listEventReports is Synapse's GET /_synapse/admin/v1/event_reports:
// newest first unless dir=f, from an offset, 100 at a time by default,
// filtered by reporter (user_id) and room (room_id), each substrings.
func (a *API) listEventReports(r *http.Request, _ *httpapi.Caller) (any, error) {
	q := r.URL.Query()
	query := reports.Query{Kind: reports.KindEvent, Reporter: q.Get("user_id"), RoomID: q.Get("room_id")}
	if err := pageParams(r, &query); err != nil {
		return nil, err
	}
	return a.offsetPage(r, query, "event_reports", func(rep reports.Report) (map[string]any, error) {
		entry, _, err := a.describe(r.Context(), rep)
		return entry, err
	})
}

// listUserReports is Synapse's GET /_synapse/admin/v1/user_reports:
// paged as event_reports, filtered by reporter (user_id) and reported
// user (target_user_id).
func (a *API) listUserReports(r *http.Request, _ *httpapi.Caller) (any, error) {
	q := r.URL.Query()
	query := reports.Query{Kind: reports.KindUser, Reporter: q.Get("user_id"), TargetUserID: q.Get("target_user_id")}
	if err := pageParams(r, &query); err != nil {
		return nil, err
	}
	return a.offsetPage(r, query, "user_reports", func(rep reports.Report) (map[string]any, error) {
		entry, _, err := a.describe(r.Context(), rep)
		return entry, err
	})
}

// listRoomReports is Synapse's GET /_synapse/admin/v1/room_reports:
// newest first, paged by report ID rather than offset (from: the
// next_batch of the previous page, reports older than it), filtered by
// reporter (user_id) and room (room_id).
func (a *API) listRoomReports(r *http.Request, _ *httpapi.Caller) (any, error) {
	q := r.URL.Query()
	query := reports.Query{Kind: reports.KindRoom, Reporter: q.Get("user_id"), RoomID: q.Get("room_id")}
	from, err := nonNegative(q.Get("from"), 0, "from")
	if err != nil {
		return nil, err
	}
	query.Before = int64(from)
	if query.Limit, err = nonNegative(q.Get("limit"), 100, "limit"); err != nil {
		return nil, err
	}
	limit := query.Limit
	query.Limit++ // one more tells whether another page follows
	list, total, err := a.reports.List(r.Context(), query)
	if err != nil {
		return nil, err
	}
	more := len(list) > limit
	list = list[:min(len(list), limit)]
	out := make([]map[string]any, 0, len(list))
	for _, rep := range list {
		entry, _, err := a.describe(r.Context(), rep)
		if err != nil {
			return nil, err
		}
		out = append(out, entry)
	}
	resp := map[string]any{"room_reports": out, "total": total}
	if more && len(list) > 0 {
		resp["next_batch"] = list[len(list)-1].ID
	}
	return resp, nil
}

// getReportOf is GET .../{kind}_reports/{reportId} (and, for every
// kind, the inbox's /reports/{reportId}, which adds "kind"): the
// listing's fields, and for an event report the event itself
// (event_json).
func (a *API) getReportOf(kind string) httpapi.Handler {
	return func(r *http.Request, _ *httpapi.Caller) (any, error) {
		id, err := reportID(r)
		if err != nil {
			return nil, err
		}
		rep, err := a.reports.Get(r.Context(), id, kind)
		if err != nil {
			return nil, err
		}
		entry, ev, err := a.describe(r.Context(), rep)
		if err != nil {
			return nil, err
		}
		if rep.Kind() == reports.KindEvent {
			entry["event_json"] = nil
			if ev != nil {
				entry["event_json"] = json.RawMessage(ev.JSON())
			}
		}
		if kind == "" {
			entry["kind"] = rep.Kind()
		}
		return entry, nil
	}
}

func (a *API) deleteReportOf(kind string) httpapi.Handler {
	return func(r *http.Request, _ *httpapi.Caller) (any, error) {
		id, err := reportID(r)
		if err != nil {
			return nil, err
		}
		if err := a.reports.Delete(r.Context(), id, kind); err != nil {
			return nil, err
		}
		return map[string]any{}, nil
	}
}

func reportID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("reportId"), 10, 64)
	if err != nil || id < 0 {
		return 0, mxerr.InvalidParam("The report_id parameter must be a string representing a positive integer.")
	}
	return id, nil
}

// describe renders a report as Synapse's admin API does for its kind:
// the reporter (user_id) and reason; for an event, the event's sender,
// its ID and the deprecated score; for an event or a room, the room's
// name and canonical alias (null when unset or gone) and for a room its
// topic; for a user, target_user_id. Myelin adds resolved_by,
// resolved_ts and forwarded_to (the room moderators a report of an
// event was sent to). It also returns the event, nil when this server
// no longer holds it.
func (a *API) describe(ctx context.Context, rep reports.Report) (map[string]any, *rooms.Event, error) {
	entry := map[string]any{"id": rep.ID, "received_ts": rep.ReceivedTS, "user_id": rep.Reporter, "reason": nil,
		"resolved_by": nil, "resolved_ts": nil, "forwarded_to": []string{}}
	if rep.Reason != "" {
		entry["reason"] = rep.Reason
	}
	if rep.ResolvedBy != "" {
		entry["resolved_by"], entry["resolved_ts"] = rep.ResolvedBy, rep.ResolvedTS
	}
	if rep.ForwardedTo != nil {
		entry["forwarded_to"] = rep.ForwardedTo
	}
	kind := rep.Kind()
	if kind == reports.KindUser {
		entry["target_user_id"] = rep.TargetUserID
		return entry, nil, nil
	}
	entry["room_id"] = rep.RoomID
	entry["name"], entry["canonical_alias"] = nil, nil
	if kind == reports.KindEvent {
		entry["event_id"], entry["sender"], entry["score"] = rep.EventID, nil, nil
		if rep.Score != nil {
			entry["score"] = *rep.Score
		}
	} else {
		entry["topic"] = nil
	}
	d, err := a.reports.Describe(ctx, rep)
	if err != nil {
		return nil, nil, err
	}
	if d.Event != nil {
		entry["sender"] = d.Event.Sender()
	}
	for field, v := range map[string]string{"name": d.Name, "canonical_alias": d.CanonicalAlias, "topic": d.Topic} {
		if _, shown := entry[field]; shown && v != "" {
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
