package clientapi

import (
	"io"
	"net/http"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/slidingsync"
)

// maxSlidingSyncBody bounds a sliding sync request body.
const maxSlidingSyncBody = 1 << 20

func (a *API) registerSlidingSync(rt *httpapi.Router) {
	if a.sliding == nil {
		return
	}
	rt.Add(httpapi.Route{Method: http.MethodPost, Path: "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync",
		Auth: httpapi.AuthRequired, Handler: a.slidingSync})
}

// slidingSync serves simplified sliding sync (MSC4186): pos, timeout and
// set_presence in the query string as clients send them (pos in the
// body is accepted too), the rest in the body.
func (a *API) slidingSync(r *http.Request, c *httpapi.Caller) (any, error) {
	q := r.URL.Query()
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxSlidingSyncBody+1))
	if err != nil {
		return nil, mxerr.BadJSON("Cannot read the body")
	}
	if len(raw) > maxSlidingSyncBody {
		return nil, mxerr.TooLarge("Request body too large")
	}
	body, err := slidingsync.ParseBody(raw)
	if err != nil {
		return nil, err
	}
	req := slidingsync.Request{UserID: c.UserID, DeviceID: c.DeviceID, Viewer: a.viewer(c), Pos: q.Get("pos"),
		SetPresence: q.Get("set_presence"), Body: body}
	switch req.SetPresence {
	case "", "online", "offline", "unavailable":
	default:
		return nil, mxerr.InvalidParam("Invalid set_presence %q", req.SetPresence)
	}
	if req.Timeout, err = parseTimeout(q, 0); err != nil {
		return nil, err
	}
	return a.sliding.Sync(r.Context(), req)
}
