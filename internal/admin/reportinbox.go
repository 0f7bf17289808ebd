package admin

import (
	"net/http"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/reports"
)

// Myelin's report inbox, /_myelin/admin/v1/reports: reports of events,
// rooms and users in one list, and resolving, which Synapse's admin API
// lacks (its only way to clear a report is to delete it, which loses the
// record). Same admin-only access token rule and paging as Synapse's
// event_reports.
func (a *API) registerReportInbox(rt *httpapi.Router) {
	const p = "/_myelin/admin/v1/reports"
	rt.Add(httpapi.Route{Method: http.MethodGet, Path: p, Auth: httpapi.AuthRequired, Handler: a.adminOnly(a.listInbox)})
	rt.Add(httpapi.Route{Method: http.MethodGet, Path: p + "/{reportId}", Auth: httpapi.AuthRequired, Handler: a.adminOnly(a.getReportOf(""))})
	rt.Add(httpapi.Route{Method: http.MethodDelete, Path: p + "/{reportId}", Auth: httpapi.AuthRequired, Handler: a.adminOnly(a.deleteReportOf(""))})
	rt.Add(httpapi.Route{Method: http.MethodPost, Path: p + "/{reportId}/resolve", Auth: httpapi.AuthRequired, Handler: a.adminOnly(a.resolveReport)})
}

// listInbox is GET /_myelin/admin/v1/reports: every kind, newest first
// unless dir=f, paged by from/limit with next_token and total, filtered
// by kind (event, room, user), reporter (user_id), room_id and
// target_user_id (substrings) and resolved (true or false). Each entry
// is its kind's Synapse shape plus "kind".
func (a *API) listInbox(r *http.Request, _ *httpapi.Caller) (any, error) {
	q := r.URL.Query()
	query := reports.Query{Kind: q.Get("kind"), Reporter: q.Get("user_id"), RoomID: q.Get("room_id"), TargetUserID: q.Get("target_user_id")}
	switch query.Kind {
	case "", reports.KindEvent, reports.KindRoom, reports.KindUser:
	default:
		return nil, mxerr.InvalidParam("kind must be event, room or user")
	}
	switch q.Get("resolved") {
	case "":
	case "true":
		query.Resolved = new(bool)
		*query.Resolved = true
	case "false":
		query.Resolved = new(bool)
	default:
		return nil, mxerr.InvalidParam("resolved must be true or false")
	}
	if err := pageParams(r, &query); err != nil {
		return nil, err
	}
	return a.offsetPage(r, query, "reports", func(rep reports.Report) (map[string]any, error) {
		entry, _, err := a.describe(r.Context(), rep)
		if entry != nil {
			entry["kind"] = rep.Kind()
		}
		return entry, err
	})
}

// resolveReport is POST /_myelin/admin/v1/reports/{reportId}/resolve:
// marks the report resolved by the calling admin, now, or open again
// with {"resolved": false}; answers the report as the inbox lists it.
func (a *API) resolveReport(r *http.Request, c *httpapi.Caller) (any, error) {
	id, err := reportID(r)
	if err != nil {
		return nil, err
	}
	var body struct {
		Resolved *bool `json:"resolved"`
	}
	if r.ContentLength != 0 {
		if err := httpapi.ReadJSON(r, &body); err != nil {
			return nil, err
		}
	}
	resolved := body.Resolved == nil || *body.Resolved
	rep, err := a.reports.Resolve(r.Context(), id, c.UserID, resolved)
	if err != nil {
		return nil, err
	}
	entry, _, err := a.describe(r.Context(), rep)
	if err != nil {
		return nil, err
	}
	entry["kind"] = rep.Kind()
	return entry, nil
}
