package admin

import (
	"encoding/json"
	"net/http"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/ident"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/roomadmin"
)

// registerPurgeHistory adds Synapse's purge history API: POST
// /_synapse/admin/v1/purge_history/{roomId}[/{eventId}] and its status.
func (a *Rooms) registerPurgeHistory(rt *httpapi.Router) {
	const p = "/_synapse/admin/v1"
	for _, path := range []string{p + "/purge_history/{roomId}", p + "/purge_history/{roomId}/{eventId}"} {
		rt.Add(httpapi.Route{Method: http.MethodPost, Path: path, Auth: httpapi.AuthRequired, Handler: adminOnly(a.purgeHistory)})
	}
	rt.Add(httpapi.Route{Method: http.MethodGet, Path: p + "/purge_history_status/{purgeId}", Auth: httpapi.AuthRequired, Handler: adminOnly(a.purgeHistoryStatus)})
}

// historyRequest reads a purge history request: the event from the path
// or purge_up_to_event_id, or purge_up_to_ts; delete_local_events.
func historyRequest(r *http.Request, c *httpapi.Caller) (roomadmin.HistoryRequest, error) {
	req := roomadmin.HistoryRequest{RoomID: r.PathValue("roomId"), UpToEventID: r.PathValue("eventId"), Requester: c.UserID}
	var body struct {
		DeleteLocal json.RawMessage `json:"delete_local_events"`
		UpToEventID *string         `json:"purge_up_to_event_id"`
		UpToTS      json.RawMessage `json:"purge_up_to_ts"`
	}
	if err := httpapi.ReadOptionalJSON(r, &body); err != nil {
		return req, err
	}
	if body.DeleteLocal != nil && json.Unmarshal(body.DeleteLocal, &req.DeleteLocalEvents) != nil {
		return req, mxerr.BadJSON("delete_local_events must be a boolean")
	}
	if req.UpToEventID == "" && body.UpToEventID != nil {
		req.UpToEventID = *body.UpToEventID
	}
	if req.UpToEventID != "" && ident.CheckID(req.UpToEventID) != nil {
		return req, mxerr.InvalidParam("purge_up_to_event_id is not an event ID")
	}
	if req.UpToEventID == "" && body.UpToTS != nil {
		var ts int64
		if json.Unmarshal(body.UpToTS, &ts) != nil {
			return req, mxerr.InvalidParam("purge_up_to_ts must be an int")
		}
		req.UpToTS = &ts
	}
	return req, nil
}

func (a *Rooms) purgeHistory(r *http.Request, c *httpapi.Caller) (any, error) {
	req, err := historyRequest(r, c)
	if err != nil {
		return nil, err
	}
	id, err := a.svc.Deletions().StartHistoryPurge(r.Context(), req)
	if err != nil {
		return nil, err
	}
	a.log.Info("admin: purge history started", "room_id", req.RoomID, "purge_id", id, "by", c.UserID)
	return map[string]any{"purge_id": id}, nil
}

func (a *Rooms) purgeHistoryStatus(r *http.Request, _ *httpapi.Caller) (any, error) {
	p, ok, err := a.svc.Deletions().HistoryStatus(r.Context(), r.PathValue("purgeId"))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, mxerr.NotFound("purge id '%s' not found", r.PathValue("purgeId"))
	}
	out := map[string]any{"status": p.Status}
	if p.Error != "" {
		out["error"] = p.Error
	}
	return out, nil
}
