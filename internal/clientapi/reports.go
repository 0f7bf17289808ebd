package clientapi

import (
	"encoding/json"
	"net/http"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

func (a *API) registerReports(rt *httpapi.Router) {
	for path, h := range map[string]httpapi.Handler{
		"/rooms/{roomId}/report/{eventId}": a.reportEvent,
		"/rooms/{roomId}/report":           a.reportRoom,
		"/users/{userId}/report":           a.reportUser,
	} {
		legacy(rt, httpapi.Route{Method: http.MethodPost, Path: path, Auth: httpapi.AuthRequired, RateLimit: LimitReport, Handler: h})
	}
}

// reportBody reads a report's reason, a string, required for reports of
// rooms and users (spec) and optional for events. Anything else in the
// body is ignored, including the event report's score, which v1.18
// removed: clients that still send it are answered as if they had not.
func reportBody(r *http.Request, required bool) (string, error) {
	// A map, not a struct: JSON keys are case-sensitive ("Reason" is not
	// the reason), where encoding/json's struct fields are not.
	var body map[string]json.RawMessage
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return "", err
	}
	raw, ok := body["reason"]
	if !ok || string(raw) == "null" {
		if required {
			return "", mxerr.BadJSON("Param 'reason' is required")
		}
		return "", nil
	}
	var reason string
	if json.Unmarshal(raw, &reason) != nil {
		return "", mxerr.BadJSON("Param 'reason' must be a string")
	}
	return reason, nil
}

func (a *API) reportEvent(r *http.Request, c *httpapi.Caller) (any, error) {
	reason, err := reportBody(r, false)
	if err != nil {
		return nil, err
	}
	return empty, a.reports.Event(r.Context(), c.UserID, r.PathValue("roomId"), r.PathValue("eventId"), reason)
}

func (a *API) reportRoom(r *http.Request, c *httpapi.Caller) (any, error) {
	reason, err := reportBody(r, true)
	if err != nil {
		return nil, err
	}
	return empty, a.reports.Room(r.Context(), c.UserID, r.PathValue("roomId"), reason)
}

func (a *API) reportUser(r *http.Request, c *httpapi.Caller) (any, error) {
	reason, err := reportBody(r, true)
	if err != nil {
		return nil, err
	}
	return empty, a.reports.User(r.Context(), c.UserID, r.PathValue("userId"), reason)
}
