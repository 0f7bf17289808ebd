package clientapi

import (
	"encoding/json"
	"net/http"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

func (a *API) registerReports(rt *httpapi.Router) {
	legacy(rt, httpapi.Route{Method: http.MethodPost, Path: "/rooms/{roomId}/report/{eventId}", Auth: httpapi.AuthRequired, Handler: a.reportEvent})
	legacy(rt, httpapi.Route{Method: http.MethodPost, Path: "/rooms/{roomId}/report", Auth: httpapi.AuthRequired, Handler: a.reportRoom})
	legacy(rt, httpapi.Route{Method: http.MethodPost, Path: "/users/{userId}/report", Auth: httpapi.AuthRequired, Handler: a.reportUser})
}

// reportBody checks a report's reason and (deprecated, event reports
// only) score as Synapse does.
func reportBody(r *http.Request, withScore bool) (string, *int64, error) {
	var body struct {
		Reason json.RawMessage `json:"reason"`
		Score  json.RawMessage `json:"score"`
	}
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return "", nil, err
	}
	var reason string
	if body.Reason != nil && json.Unmarshal(body.Reason, &reason) != nil {
		return "", nil, mxerr.InvalidParam("Param 'reason' must be a string")
	}
	if !withScore || body.Score == nil || string(body.Score) == "null" {
		return reason, nil, nil
	}
	var score int64
	if json.Unmarshal(body.Score, &score) != nil || score < -100 || score > 0 {
		return "", nil, mxerr.InvalidParam("Param 'score' must be an integer in range [-100, 0]")
	}
	return reason, &score, nil
}

func (a *API) reportEvent(r *http.Request, c *httpapi.Caller) (any, error) {
	reason, score, err := reportBody(r, true)
	if err != nil {
		return nil, err
	}
	return empty, a.reports.Event(r.Context(), c.UserID, r.PathValue("roomId"), r.PathValue("eventId"), reason, score)
}

func (a *API) reportRoom(r *http.Request, c *httpapi.Caller) (any, error) {
	reason, _, err := reportBody(r, false)
	if err != nil {
		return nil, err
	}
	return empty, a.reports.Room(r.Context(), c.UserID, r.PathValue("roomId"), reason)
}

func (a *API) reportUser(r *http.Request, c *httpapi.Caller) (any, error) {
	reason, _, err := reportBody(r, false)
	if err != nil {
		return nil, err
	}
	return empty, a.reports.User(r.Context(), c.UserID, r.PathValue("userId"), reason)
}
