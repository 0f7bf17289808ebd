package admin

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/ident"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/roomadmin"
	"github.com/myelin-chat/myelin/internal/rooms"
)

// registerUserJobs adds the admin calls that act on a user in rooms:
// Synapse's redaction of all of a user's events (POST
// /_synapse/admin/v1/user/{userId}/redact, Draupnir's and Ketesa's) with
// its status, and joining a local user to a room (POST
// /_synapse/admin/v1/join/{roomIdOrAlias}).
func (a *Rooms) registerUserJobs(rt *httpapi.Router) {
	const p = "/_synapse/admin/v1"
	add := func(method, path string, h httpapi.Handler) {
		rt.Add(httpapi.Route{Method: method, Path: path, Auth: httpapi.AuthRequired, Handler: adminOnly(h)})
	}
	// .../user/{userId}/redact and .../user/redact_status/{redactId}
	// would be ambiguous patterns for net/http (both match
	// /user/redact_status/redact): both are served by one wildcard
	// pattern, which answers anything else as an unknown path, before
	// the admin check, as the router would.
	only := func(ok func(r *http.Request) bool, h httpapi.Handler) httpapi.Handler {
		h = adminOnly(h)
		return func(r *http.Request, c *httpapi.Caller) (any, error) {
			if !ok(r) {
				return nil, mxerr.Unrecognized(http.StatusNotFound, "Unrecognized request")
			}
			return h(r, c)
		}
	}
	const userJob = p + "/user/{userId}/{action}"
	rt.Add(httpapi.Route{Method: http.MethodPost, Path: userJob, Auth: httpapi.AuthRequired,
		Handler: only(func(r *http.Request) bool { return r.PathValue("action") == "redact" }, a.redactUser)})
	rt.Add(httpapi.Route{Method: http.MethodGet, Path: userJob, Auth: httpapi.AuthRequired,
		Handler: only(func(r *http.Request) bool { return r.PathValue("userId") == "redact_status" }, a.redactStatus)})
	add(http.MethodPost, p+"/join/{roomId}", a.joinUser)
	add(http.MethodGet, p+"/users/{userId}/sent_invite_count", a.sentInviteCount)
	add(http.MethodGet, p+"/users/{userId}/cumulative_joined_room_count", a.cumulativeJoinedRooms)
	add(http.MethodGet, p+"/fetch_event/{eventId}", a.fetchEvent)
	add(http.MethodGet, p+"/scheduled_tasks", a.scheduledTasks)
}

// scheduledTasks is GET /_synapse/admin/v1/scheduled_tasks: the
// background jobs (room deletions, history purges, user redactions),
// filtered by action_name, resource_id, job_status and max_timestamp.
func (a *Rooms) scheduledTasks(r *http.Request, _ *httpapi.Caller) (any, error) {
	q := r.URL.Query()
	f := roomadmin.TaskFilter{Action: q.Get("action_name"), ResourceID: q.Get("resource_id"), Status: q.Get("job_status")}
	switch f.Status {
	case "", roomadmin.TaskScheduled, roomadmin.TaskActive, roomadmin.TaskComplete, roomadmin.TaskFailed:
	default:
		return nil, mxerr.InvalidParam("Query parameter job_status must be one of scheduled, active, complete, failed")
	}
	if v := q.Get("max_timestamp"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return nil, mxerr.InvalidParam("Query parameter max_timestamp must be a non-negative integer")
		}
		f.MaxTimestampMS = n
	}
	tasks, err := a.svc.Deletions().Tasks(r.Context(), f)
	if err != nil {
		return nil, err
	}
	return map[string]any{"scheduled_tasks": tasks}, nil
}

// sentInviteCount is GET .../users/{userId}/sent_invite_count: invites
// the user sent since from_ts (milliseconds, default 0), as
// {"invite_count"}. Any user ID, as Synapse: remote users' invites this
// server received count too.
func (a *Rooms) sentInviteCount(r *http.Request, _ *httpapi.Caller) (any, error) {
	userID := r.PathValue("userId")
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	var from int64
	if v := r.URL.Query().Get("from_ts"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return nil, mxerr.InvalidParam("Query parameter from_ts must be a non-negative integer")
		}
		from = n
	}
	n, err := a.svc.SentInviteCount(r.Context(), userID, from)
	if err != nil {
		return nil, err
	}
	return map[string]any{"invite_count": n}, nil
}

// cumulativeJoinedRooms is GET .../users/{userId}/cumulative_joined_room_count:
// how many rooms the user has ever joined, left ones included.
func (a *Rooms) cumulativeJoinedRooms(r *http.Request, _ *httpapi.Caller) (any, error) {
	userID := r.PathValue("userId")
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	n, err := a.svc.CumulativeJoinedRooms(r.Context(), userID)
	if err != nil {
		return nil, err
	}
	return map[string]any{"cumulative_joined_room_count": n}, nil
}

// fetchEvent is GET /_synapse/admin/v1/fetch_event/{eventId}: any event
// the server holds, as {"event"} in the client format (served as the
// admin's /messages serves it: a redacted event redacted).
func (a *Rooms) fetchEvent(r *http.Request, c *httpapi.Caller) (any, error) {
	id := r.PathValue("eventId")
	if ident.CheckID(id) != nil || len(id) < 2 || id[0] != '$' {
		return nil, mxerr.InvalidParam("%q is not an event ID", id)
	}
	ev, err := a.svc.Event(r.Context(), id)
	if err != nil {
		return nil, err
	}
	out, err := a.render.Render(r.Context(), []*rooms.Event{ev}, viewer(c), c.UserID, false)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, mxerr.NotFound("Event not found")
	}
	return map[string]any{"event": out[0]}, nil
}

// redactRequest reads a user redaction's body: rooms (a list of room
// IDs, required, as Synapse: empty means every room the user is joined
// to or banned from), reason, limit (per room, positive), use_admin.
func redactRequest(r *http.Request, c *httpapi.Caller) (roomadmin.UserRedactRequest, error) {
	req := roomadmin.UserRedactRequest{UserID: r.PathValue("userId"), Requester: c.UserID}
	if err := checkUserID(req.UserID); err != nil {
		return req, err
	}
	var body struct {
		Rooms    json.RawMessage `json:"rooms"`
		Reason   json.RawMessage `json:"reason"`
		Limit    json.RawMessage `json:"limit"`
		UseAdmin json.RawMessage `json:"use_admin"`
	}
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return req, err
	}
	if body.Rooms == nil {
		return req, mxerr.MissingParam("Missing rooms")
	}
	if json.Unmarshal(body.Rooms, &req.Rooms) != nil || req.Rooms == nil && string(body.Rooms) == "null" {
		return req, mxerr.BadJSON("rooms must be a list of room IDs")
	}
	for _, id := range req.Rooms {
		if ident.CheckID(id) != nil || len(id) < 2 || id[0] != '!' {
			return req, mxerr.InvalidParam("%q is not a room ID", id)
		}
	}
	if body.Reason != nil && string(body.Reason) != "null" && json.Unmarshal(body.Reason, &req.Reason) != nil {
		return req, mxerr.BadJSON("reason must be a string")
	}
	if body.Limit != nil && string(body.Limit) != "null" {
		if json.Unmarshal(body.Limit, &req.Limit) != nil || req.Limit <= 0 {
			return req, mxerr.InvalidParam("limit must be a positive integer")
		}
	}
	if body.UseAdmin != nil && string(body.UseAdmin) != "null" && json.Unmarshal(body.UseAdmin, &req.UseAdmin) != nil {
		return req, mxerr.BadJSON("use_admin must be a boolean")
	}
	return req, nil
}

func (a *Rooms) redactUser(r *http.Request, c *httpapi.Caller) (any, error) {
	req, err := redactRequest(r, c)
	if err != nil {
		return nil, err
	}
	id, err := a.svc.Deletions().StartUserRedaction(r.Context(), req)
	if err != nil {
		return nil, err
	}
	a.log.Info("admin: user redaction started", "user_id", req.UserID, "redact_id", id, "by", c.UserID)
	return map[string]any{"redact_id": id}, nil
}

func (a *Rooms) redactStatus(r *http.Request, _ *httpapi.Caller) (any, error) {
	id := r.PathValue("action")
	j, ok, err := a.svc.Deletions().UserRedactionStatus(r.Context(), id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, mxerr.NotFound("redact id '%s' not found", id)
	}
	return map[string]any{"status": j.Status, "failed_redactions": j.Failed}, nil
}

// joinUser is POST /_synapse/admin/v1/join/{roomIdOrAlias} with
// {"user_id"}: answers {"room_id"}. A room this server is not in is
// joined over federation through the servers an alias resolves to or,
// for a room ID, those named by server_name (Synapse's parameter) or via.
func (a *Rooms) joinUser(r *http.Request, c *httpapi.Caller) (any, error) {
	var body struct {
		UserID json.RawMessage `json:"user_id"`
	}
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return nil, err
	}
	if body.UserID == nil {
		return nil, mxerr.MissingParam("Missing user_id")
	}
	var userID string
	if json.Unmarshal(body.UserID, &userID) != nil {
		return nil, mxerr.BadJSON("user_id must be a string")
	}
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	named, err := joinServers(r.URL.Query())
	if err != nil {
		return nil, err
	}
	roomID, via, err := a.svc.ResolveRoomVia(r.Context(), r.PathValue("roomId"))
	if err != nil {
		return nil, err
	}
	if err := a.svc.JoinUser(r.Context(), c.UserID, roomID, userID, append(via, named...)); err != nil {
		return nil, err
	}
	return map[string]any{"room_id": roomID}, nil
}

// joinServers reads the servers a remote join goes through: Synapse's
// server_name parameters, and via as the client API's join takes them.
func joinServers(q url.Values) ([]string, error) {
	named := append(append([]string{}, q["server_name"]...), q["via"]...)
	for _, srv := range named {
		if config.ValidateServerName(srv) != nil {
			return nil, mxerr.InvalidParam("Invalid server name in server_name or via")
		}
	}
	return named, nil
}
