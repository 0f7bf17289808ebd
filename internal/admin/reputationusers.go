package admin

import (
	"net/http"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// RegisterExtent adds the extent reports (issue 16 item 8): the user's
// own, GET /_matrix/client/unstable/org.myelin/reputation/extent, and
// the server's, GET /_myelin/admin/v1/reputation/extent, both with
// since_ts (ms; default 0: everything kept).
func (a *Reputation) RegisterExtent(rt *httpapi.Router) {
	rt.Add(httpapi.Route{Method: http.MethodGet, Path: "/_matrix/client/unstable/org.myelin/reputation/extent",
		Auth: httpapi.AuthRequired, Handler: a.userExtent})
	rt.Add(httpapi.Route{Method: http.MethodGet, Path: "/_myelin/admin/v1/reputation/extent",
		Auth: httpapi.AuthRequired, Handler: adminOnly(a.serverExtent)})
}

// userExtent is what the caller's own filter hid, per feed.
func (a *Reputation) userExtent(r *http.Request, c *httpapi.Caller) (any, error) {
	since, err := sinceTS(r)
	if err != nil {
		return nil, err
	}
	u := a.svc.UserFilters()
	if u == nil {
		return nil, mxerr.NotFound("Users' reputation filters are off")
	}
	return map[string]any{"since_ts": since, "threshold": u.Threshold(c.UserID), "feeds": u.UserExtent(c.UserID, since)}, nil
}

// serverExtent is what the server's feeds hid, per feed.
func (a *Reputation) serverExtent(r *http.Request, _ *httpapi.Caller) (any, error) {
	since, err := sinceTS(r)
	if err != nil {
		return nil, err
	}
	feeds, err := a.svc.ServerExtent(r.Context(), since)
	if err != nil {
		return nil, err
	}
	return map[string]any{"since_ts": since, "feeds": feeds}, nil
}
