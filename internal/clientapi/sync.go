package clientapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/myelin-chat/myelin/internal/clientsync"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// maxSyncTimeout caps long-polling, as reverse proxies time out anyway.
const maxSyncTimeout = 5 * time.Minute

func (a *API) registerSync(rt *httpapi.Router) {
	legacy(rt, httpapi.Route{Method: http.MethodGet, Path: "/sync", Auth: httpapi.AuthRequired, AllowGuest: true, Handler: a.syncHandler})
	legacy(rt, httpapi.Route{Method: http.MethodPost, Path: "/user/{userId}/filter", Auth: httpapi.AuthRequired, AllowGuest: true, Handler: a.createFilter})
	legacy(rt, httpapi.Route{Method: http.MethodGet, Path: "/user/{userId}/filter/{filterId}", Auth: httpapi.AuthRequired, AllowGuest: true, Handler: a.getFilter})
}

func (a *API) syncHandler(r *http.Request, c *httpapi.Caller) (any, error) {
	q := r.URL.Query()
	req := clientsync.Request{UserID: c.UserID, DeviceID: c.DeviceID, Viewer: a.viewer(c), FullState: q.Get("full_state") == "true",
		SetPresence: q.Get("set_presence"), UseStateAfter: q.Get("use_state_after") == "true"}
	if s := q.Get("since"); s != "" {
		tok, err := clientsync.ParseToken(s)
		if err != nil {
			return nil, err
		}
		req.Since = &tok
	}
	if t := q.Get("timeout"); t != "" {
		ms, err := strconv.ParseInt(t, 10, 64)
		if err != nil || ms < 0 {
			return nil, mxerr.InvalidParam("timeout must be a non-negative integer")
		}
		req.Timeout = min(time.Duration(ms)*time.Millisecond, maxSyncTimeout)
	}
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
	return a.sync.Sync(r.Context(), req)
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
