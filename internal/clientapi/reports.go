package clientapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/store"
)

// Reports stores users' reports for the server's admins.
type Reports interface {
	AddReport(ctx context.Context, r store.Report) error
}

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

// reportEvent: the reporter must be joined to the room (spec) and able to
// see the event; otherwise M_NOT_FOUND, indistinguishable from a missing
// event.
func (a *API) reportEvent(r *http.Request, c *httpapi.Caller) (any, error) {
	reason, score, err := reportBody(r, true)
	if err != nil {
		return nil, err
	}
	ctx, roomID, eventID := r.Context(), r.PathValue("roomId"), r.PathValue("eventId")
	notFound := mxerr.NotFound("The event was not found or you are not joined to the room.")
	if m, err := a.rooms.MembershipOf(ctx, roomID, c.UserID); err != nil || m != spec.Join {
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		return nil, notFound
	}
	if _, err := a.rooms.VisibleEvent(ctx, roomID, eventID, c.UserID); err != nil {
		if _, ok := mxerr.As(err); ok {
			return nil, notFound
		}
		return nil, err
	}
	return empty, a.reports.AddReport(ctx, store.Report{Reporter: c.UserID, RoomID: roomID, EventID: eventID,
		Reason: reason, Score: score, ReceivedTS: time.Now().UnixMilli()})
}

// reportRoom: anyone may report a room this server knows.
func (a *API) reportRoom(r *http.Request, c *httpapi.Caller) (any, error) {
	reason, _, err := reportBody(r, false)
	if err != nil {
		return nil, err
	}
	roomID := r.PathValue("roomId")
	if _, err := a.rooms.RoomVersion(r.Context(), roomID); err != nil {
		if _, ok := mxerr.As(err); ok {
			return nil, mxerr.NotFound("The room was not found.")
		}
		return nil, err
	}
	return empty, a.reports.AddReport(r.Context(), store.Report{Reporter: c.UserID, RoomID: roomID,
		Reason: reason, ReceivedTS: time.Now().UnixMilli()})
}

// reportUser: a local user must exist; another server's users cannot be
// checked here and are taken as given.
func (a *API) reportUser(r *http.Request, c *httpapi.Caller) (any, error) {
	reason, _, err := reportBody(r, false)
	if err != nil {
		return nil, err
	}
	target := r.PathValue("userId")
	uid, err := spec.NewUserID(target, true)
	if err != nil {
		return nil, mxerr.InvalidParam("%q is not a valid user ID", target)
	}
	if string(uid.Domain()) == a.cfg.ServerName {
		if _, err := a.accounts.User(r.Context(), uid.Local()); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil, mxerr.NotFound("The user was not found.")
			}
			return nil, err
		}
	}
	return empty, a.reports.AddReport(r.Context(), store.Report{Reporter: c.UserID, TargetUserID: target,
		Reason: reason, ReceivedTS: time.Now().UnixMilli()})
}
