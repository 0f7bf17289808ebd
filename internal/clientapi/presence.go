package clientapi

import (
	"encoding/json"
	"net/http"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// Presence (spec "Presence"); guests are refused, as in Synapse.
func (a *API) registerPresence(rt *httpapi.Router) {
	if a.presence == nil {
		return
	}
	legacy(rt, httpapi.Route{Method: http.MethodGet, Path: "/presence/{userId}/status", Auth: httpapi.AuthRequired, Handler: a.getPresence})
	legacy(rt, httpapi.Route{Method: http.MethodPut, Path: "/presence/{userId}/status", Auth: httpapi.AuthRequired, Handler: a.putPresence})
}

func (a *API) getPresence(r *http.Request, c *httpapi.Caller) (any, error) {
	userID := r.PathValue("userId")
	if _, err := spec.NewUserID(userID, false); err != nil {
		return nil, mxerr.InvalidParam("Invalid user ID %q", userID)
	}
	return a.presence.Get(r.Context(), c.UserID, userID)
}

// putPresence sets the caller's own presence. Like Synapse, status_msg
// must be a string when present and an absent one clears the message;
// unlike Synapse, other fields are ignored rather than refused.
func (a *API) putPresence(r *http.Request, c *httpapi.Caller) (any, error) {
	if r.PathValue("userId") != c.UserID {
		return nil, mxerr.Forbidden("Can only set your own presence state")
	}
	var body struct {
		Presence  *string         `json:"presence"`
		StatusMsg json.RawMessage `json:"status_msg"`
	}
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return nil, err
	}
	if body.Presence == nil {
		return nil, mxerr.MissingParam("Missing presence")
	}
	var msg *string
	if len(body.StatusMsg) > 0 && string(body.StatusMsg) != "null" {
		var s string
		if err := json.Unmarshal(body.StatusMsg, &s); err != nil {
			return nil, mxerr.InvalidParam("status_msg must be a string")
		}
		// Every user sharing a room sees it in /sync, every server in
		// a presence EDU.
		if max := a.cfg.Limits.MaxStatusMsgBytes; len(s) > max {
			return nil, mxerr.TooLarge("status_msg is at most %d bytes", max).WithStatus(http.StatusBadRequest)
		}
		msg = &s
	}
	return empty, a.presence.Set(r.Context(), c.UserID, *body.Presence, msg)
}
