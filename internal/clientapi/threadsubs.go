package clientapi

import (
	"encoding/json"
	"net/http"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

func (a *API) registerThreadSubscriptions(rt *httpapi.Router) {
	if a.threadSubs == nil {
		return
	}
	// MSC4306, under the unstable prefix Synapse and Element use.
	const p = "/_matrix/client/unstable/io.element.msc4306/rooms/{roomId}/thread/{threadRootId}/subscription"
	rt.Add(httpapi.Route{Method: http.MethodGet, Path: p, Auth: httpapi.AuthRequired, Handler: a.getThreadSubscription})
	rt.Add(httpapi.Route{Method: http.MethodPut, Path: p, Auth: httpapi.AuthRequired, Handler: a.putThreadSubscription})
	rt.Add(httpapi.Route{Method: http.MethodDelete, Path: p, Auth: httpapi.AuthRequired, Handler: a.deleteThreadSubscription})
}

// ParseThreadSubscription reads a PUT .../subscription body: {} for a
// subscription by hand, {"automatic": "$event"} for one a client made
// because of that event. Anything else is M_BAD_JSON.
func ParseThreadSubscription(body []byte) (automatic *string, err error) {
	var b map[string]json.RawMessage
	if json.Unmarshal(body, &b) != nil || b == nil {
		return nil, mxerr.BadJSON("The body must be a JSON object")
	}
	raw, ok := b["automatic"]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	var id string
	if json.Unmarshal(raw, &id) != nil {
		return nil, mxerr.BadJSON("automatic must be the ID of the event that caused the subscription")
	}
	return &id, nil
}

func (a *API) getThreadSubscription(r *http.Request, c *httpapi.Caller) (any, error) {
	sub, err := a.threadSubs.Get(r.Context(), c.UserID, r.PathValue("roomId"), r.PathValue("threadRootId"))
	if err != nil {
		return nil, err
	}
	if sub == nil {
		return nil, mxerr.NotFound("Not subscribed.")
	}
	return map[string]bool{"automatic": sub.Automatic}, nil
}

func (a *API) putThreadSubscription(r *http.Request, c *httpapi.Caller) (any, error) {
	var raw json.RawMessage
	if err := httpapi.ReadJSON(r, &raw); err != nil {
		return nil, err
	}
	automatic, err := ParseThreadSubscription(raw)
	if err != nil {
		return nil, err
	}
	if err := a.threadSubs.Subscribe(r.Context(), c.UserID, r.PathValue("roomId"), r.PathValue("threadRootId"), automatic); err != nil {
		return nil, err
	}
	return empty, nil
}

func (a *API) deleteThreadSubscription(r *http.Request, c *httpapi.Caller) (any, error) {
	if err := a.threadSubs.Unsubscribe(r.Context(), c.UserID, r.PathValue("roomId"), r.PathValue("threadRootId")); err != nil {
		return nil, err
	}
	return empty, nil
}
