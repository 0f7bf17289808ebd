package admin

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"

	"github.com/myelin-chat/myelin/internal/clientevent"
	"github.com/myelin-chat/myelin/internal/clientsync"
	"github.com/myelin-chat/myelin/internal/filter"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/ident"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/roomadmin"
	"github.com/myelin-chat/myelin/internal/rooms"
)

// Rooms is Synapse's room admin API (docs/admin_api/rooms.md).
type Rooms struct {
	svc    *roomadmin.Service
	render clientevent.Renderer
	log    *slog.Logger
}

// NewRooms makes the room admin API over the service.
func NewRooms(svc *roomadmin.Service, render clientevent.Renderer, log *slog.Logger) *Rooms {
	if log == nil {
		log = slog.Default()
	}
	return &Rooms{svc: svc, render: render, log: log}
}

// Register adds the room admin routes.
func (a *Rooms) Register(rt *httpapi.Router) {
	const v1, v2 = "/_synapse/admin/v1/rooms", "/_synapse/admin/v2/rooms"
	add := func(method, path string, h httpapi.Handler) {
		rt.Add(httpapi.Route{Method: method, Path: path, Auth: httpapi.AuthRequired, Handler: adminOnly(h)})
	}
	add(http.MethodGet, v1, a.list)
	add(http.MethodGet, v1+"/{roomId}", a.details)
	add(http.MethodDelete, v1+"/{roomId}", a.deleteV1)
	add(http.MethodGet, v1+"/{roomId}/members", a.members)
	add(http.MethodGet, v1+"/{roomId}/state", a.state)
	add(http.MethodGet, v1+"/{roomId}/messages", a.messages)
	add(http.MethodGet, v1+"/{roomId}/block", a.getBlock)
	add(http.MethodPut, v1+"/{roomId}/block", a.putBlock)
	add(http.MethodPost, v1+"/{roomId}/make_room_admin", a.makeRoomAdmin)
	add(http.MethodGet, v1+"/{roomId}/forward_extremities", a.extremities)
	add(http.MethodDelete, v1+"/{roomId}/forward_extremities", a.trimExtremities)
	add(http.MethodGet, v1+"/{roomId}/timestamp_to_event", a.timestampToEvent)
	add(http.MethodDelete, v2+"/{roomId}", a.deleteV2)
	// .../{roomId}/delete_status and .../delete_status/{deleteId} would
	// be ambiguous patterns for net/http; the first is served by a
	// wildcard the second is more specific than.
	add(http.MethodGet, v2+"/{roomId}/{action}", a.roomDeleteStatus)
	add(http.MethodGet, v2+"/delete_status/{deleteId}", a.deleteStatus)
	a.registerPurgeHistory(rt)
	a.registerViews(rt)
	a.registerUserJobs(rt)
}

// list is GET /_synapse/admin/v1/rooms: an offset page (from, limit) of
// every room the server knows, sorted by order_by (dir b reverses), with
// total_rooms and, where there is one, next_batch and prev_batch.
func (a *Rooms) list(r *http.Request, _ *httpapi.Caller) (any, error) {
	query, err := parseListQuery(r.URL.Query())
	if err != nil {
		return nil, err
	}
	list, total, err := a.svc.List(r.Context(), query)
	if err != nil {
		return nil, err
	}
	resp := map[string]any{"rooms": list, "offset": query.From, "total_rooms": total}
	if query.Limit < total-query.From {
		resp["next_batch"] = query.From + query.Limit
	}
	if query.From > 0 {
		resp["prev_batch"] = max(query.From-query.Limit, 0)
	}
	return resp, nil
}

func (a *Rooms) details(r *http.Request, _ *httpapi.Caller) (any, error) {
	return a.svc.Details(r.Context(), r.PathValue("roomId"))
}

func (a *Rooms) members(r *http.Request, _ *httpapi.Caller) (any, error) {
	members, err := a.svc.Members(r.Context(), r.PathValue("roomId"))
	if err != nil {
		return nil, err
	}
	return map[string]any{"members": members, "total": len(members)}, nil
}

func (a *Rooms) state(r *http.Request, c *httpapi.Caller) (any, error) {
	evs, err := a.svc.State(r.Context(), r.PathValue("roomId"))
	if err != nil {
		return nil, err
	}
	out, err := a.render.RenderState(r.Context(), evs, viewer(c), c.UserID, false)
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []clientevent.Event{}
	}
	return map[string]any{"state": out}, nil
}

func viewer(c *httpapi.Caller) clientevent.Viewer {
	return clientevent.Viewer{Localpart: c.Localpart, DeviceID: c.DeviceID}
}

// maxMessages caps an admin /messages page, as the client API's.
const maxMessages = 1000

// messages is GET /_synapse/admin/v1/rooms/{roomId}/messages: the client
// API's /messages (from, to, dir, limit, filter; the same tokens), over
// every event of the room whatever its history visibility. dir defaults
// to f, as in Synapse's admin API.
func (a *Rooms) messages(r *http.Request, c *httpapi.Caller) (any, error) {
	roomID := r.PathValue("roomId")
	pg, err := parsePageQuery(r.URL.Query(), a.svcCurrent())
	if err != nil {
		return nil, err
	}
	backwards, from, to, limit, rf := pg.backwards, pg.from, pg.to, pg.limit, pg.filter
	evs, next, more, err := a.svc.Messages(r.Context(), roomID, from, to, limit, backwards, func(ev *rooms.Event) bool {
		return rf.Allows(ev.Type(), ev.Sender(), roomID, ev.HasURL)
	})
	if err != nil {
		return nil, err
	}
	chunk, err := a.render.Render(r.Context(), evs, viewer(c), c.UserID, false)
	if err != nil {
		return nil, err
	}
	if chunk == nil {
		chunk = []clientevent.Event{}
	}
	resp := map[string]any{"chunk": chunk, "start": clientsync.Token{Events: from}.String()}
	if more {
		resp["end"] = clientsync.Token{Events: next}.String()
	}
	return resp, nil
}

func (a *Rooms) svcCurrent() int64 { return a.svc.CurrentPos() }

// getBlock is GET .../block: {block} and, when blocked, the admin who
// did (user_id).
func (a *Rooms) getBlock(r *http.Request, _ *httpapi.Caller) (any, error) {
	roomID, err := legalRoomID(r.PathValue("roomId"))
	if err != nil {
		return nil, err
	}
	by, blocked, err := a.svc.Blocked(r.Context(), roomID)
	if err != nil {
		return nil, err
	}
	resp := map[string]any{"block": blocked}
	if blocked {
		resp["user_id"] = by
	}
	return resp, nil
}

// putBlock is PUT .../block {"block": bool}; rooms the server does not
// know may be blocked too.
func (a *Rooms) putBlock(r *http.Request, c *httpapi.Caller) (any, error) {
	roomID, err := legalRoomID(r.PathValue("roomId"))
	if err != nil {
		return nil, err
	}
	var body struct {
		Block *bool `json:"block"`
	}
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return nil, err
	}
	if body.Block == nil {
		return nil, mxerr.BadJSON("Param 'block' must be a boolean.")
	}
	if err := a.svc.Block(r.Context(), roomID, c.UserID, *body.Block); err != nil {
		return nil, err
	}
	a.log.Info("admin: room block changed", "room_id", roomID, "block", *body.Block, "by", c.UserID)
	return map[string]any{"block": *body.Block}, nil
}

// legalRoomID refuses what is not a room ID, as Synapse's RoomID check.
func legalRoomID(id string) (string, error) {
	if len(id) < 2 || id[0] != '!' || ident.CheckID(id) != nil {
		return "", mxerr.InvalidParam("%s is not a legal room ID", id)
	}
	return id, nil
}

func (a *Rooms) makeRoomAdmin(r *http.Request, c *httpapi.Caller) (any, error) {
	var body struct {
		UserID *string `json:"user_id"`
	}
	if err := httpapi.ReadOptionalJSON(r, &body); err != nil {
		return nil, err
	}
	userID := c.UserID
	if body.UserID != nil {
		if ident.CheckID(*body.UserID) != nil || len(*body.UserID) < 2 || (*body.UserID)[0] != '@' {
			return nil, mxerr.InvalidParam("user_id must be a user ID")
		}
		userID = *body.UserID
	}
	roomID, err := a.svc.ResolveRoom(r.Context(), r.PathValue("roomId"))
	if err != nil {
		return nil, err
	}
	if err := a.svc.MakeRoomAdmin(r.Context(), roomID, userID); err != nil {
		return nil, err
	}
	a.log.Info("admin: made room admin", "room_id", roomID, "user_id", userID, "by", c.UserID)
	return map[string]any{}, nil
}

func (a *Rooms) extremities(r *http.Request, _ *httpapi.Caller) (any, error) {
	roomID, err := a.svc.ResolveRoom(r.Context(), r.PathValue("roomId"))
	if err != nil {
		return nil, err
	}
	list, err := a.svc.Extremities(r.Context(), roomID)
	if err != nil {
		return nil, err
	}
	results := make([]map[string]any, 0, len(list))
	for _, x := range list {
		// Myelin keeps no receive time: the event's origin_server_ts
		// stands in for received_ts.
		results = append(results, map[string]any{"event_id": x.EventID, "state_group": x.Snapshot, "depth": x.Depth, "received_ts": x.OriginTS})
	}
	return map[string]any{"count": len(results), "results": results}, nil
}

func (a *Rooms) trimExtremities(r *http.Request, c *httpapi.Caller) (any, error) {
	roomID, err := a.svc.ResolveRoom(r.Context(), r.PathValue("roomId"))
	if err != nil {
		return nil, err
	}
	n, err := a.svc.TrimExtremities(r.Context(), roomID)
	if err != nil {
		return nil, err
	}
	a.log.Info("admin: deleted forward extremities", "room_id", roomID, "deleted", n, "by", c.UserID)
	return map[string]any{"deleted": n}, nil
}

func (a *Rooms) timestampToEvent(r *http.Request, _ *httpapi.Caller) (any, error) {
	q := r.URL.Query()
	ts, err := strconv.ParseInt(q.Get("ts"), 10, 64)
	if err != nil {
		return nil, mxerr.MissingParam("Missing or invalid integer query parameter: ts")
	}
	backwards := false
	switch q.Get("dir") {
	case "", "f":
	case "b":
		backwards = true
	default:
		return nil, mxerr.InvalidParam("Unknown direction: %s", q.Get("dir"))
	}
	id, origin, err := a.svc.EventNear(r.Context(), r.PathValue("roomId"), ts, backwards)
	if err != nil {
		return nil, err
	}
	return map[string]any{"event_id": id, "origin_server_ts": origin}, nil
}

// deleteBody is the body of both room deletions.
type deleteBody struct {
	NewRoomUserID *string         `json:"new_room_user_id"`
	RoomName      *string         `json:"room_name"`
	Message       *string         `json:"message"`
	Block         json.RawMessage `json:"block"`
	Purge         json.RawMessage `json:"purge"`
	ForcePurge    json.RawMessage `json:"force_purge"`
}

// shutdownRequest reads a deletion body: booleans must be booleans
// (M_BAD_JSON otherwise), purge defaults to true.
func shutdownRequest(r *http.Request, c *httpapi.Caller) (roomadmin.ShutdownRequest, error) {
	roomID, err := legalRoomID(r.PathValue("roomId"))
	if err != nil {
		return roomadmin.ShutdownRequest{}, err
	}
	var body deleteBody
	if err := httpapi.ReadOptionalJSON(r, &body); err != nil {
		return roomadmin.ShutdownRequest{}, err
	}
	req := roomadmin.ShutdownRequest{RoomID: roomID, Requester: c.UserID, RoomName: roomadmin.DefaultRoomName,
		Message: roomadmin.DefaultMessage, Purge: true}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
		dst  *bool
	}{{"block", body.Block, &req.Block}, {"purge", body.Purge, &req.Purge}, {"force_purge", body.ForcePurge, &req.ForcePurge}} {
		if f.raw == nil {
			continue
		}
		if err := json.Unmarshal(f.raw, f.dst); err != nil {
			return req, mxerr.BadJSON("Param '%s' must be a boolean, if given", f.name)
		}
	}
	for _, f := range []struct {
		v   *string
		dst *string
	}{{body.NewRoomUserID, &req.NewRoomUserID}, {body.RoomName, &req.RoomName}, {body.Message, &req.Message}} {
		if f.v != nil {
			if ident.CheckID(*f.v) != nil && f.dst == &req.NewRoomUserID {
				return req, mxerr.InvalidParam("new_room_user_id must be a user ID")
			}
			*f.dst = *f.v
		}
	}
	return req, nil
}

// deleteV1 is the synchronous DELETE /_synapse/admin/v1/rooms/{roomId}
// that older tools call: it answers what the deletion did.
func (a *Rooms) deleteV1(r *http.Request, c *httpapi.Caller) (any, error) {
	req, err := shutdownRequest(r, c)
	if err != nil {
		return nil, err
	}
	a.log.Info("admin: deleting room", "room_id", req.RoomID, "by", c.UserID, "block", req.Block, "purge", req.Purge)
	return a.svc.Shutdown(r.Context(), req, nil)
}

// deleteV2 is DELETE /_synapse/admin/v2/rooms/{roomId}: the deletion
// runs in the background; its delete_id tells its status.
func (a *Rooms) deleteV2(r *http.Request, c *httpapi.Caller) (any, error) {
	req, err := shutdownRequest(r, c)
	if err != nil {
		return nil, err
	}
	id, err := a.svc.Deletions().Start(r.Context(), req)
	if err != nil {
		return nil, err
	}
	a.log.Info("admin: deleting room", "room_id", req.RoomID, "delete_id", id, "by", c.UserID, "block", req.Block, "purge", req.Purge)
	return map[string]any{"delete_id": id}, nil
}

func deletionStatus(d roomadmin.Deletion) map[string]any {
	out := map[string]any{"delete_id": d.DeleteID, "room_id": d.RoomID, "status": d.Status, "shutdown_room": d.Result}
	if d.Error != "" {
		out["error"] = d.Error
	}
	return out
}

// roomDeleteStatus is GET /_synapse/admin/v2/rooms/{roomId}/delete_status:
// every deletion of the room the server remembers; 404 if none.
func (a *Rooms) roomDeleteStatus(r *http.Request, _ *httpapi.Caller) (any, error) {
	if r.PathValue("action") != "delete_status" {
		return nil, mxerr.Unrecognized(http.StatusNotFound, "Unrecognized request")
	}
	list, err := a.svc.Deletions().OfRoom(r.Context(), r.PathValue("roomId"))
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, mxerr.NotFound("No delete task for room_id '%s' found", r.PathValue("roomId"))
	}
	results := make([]map[string]any, 0, len(list))
	for _, d := range list {
		results = append(results, deletionStatus(d))
	}
	return map[string]any{"results": results}, nil
}

// deleteStatus is GET /_synapse/admin/v2/rooms/delete_status/{deleteId}.
func (a *Rooms) deleteStatus(r *http.Request, _ *httpapi.Caller) (any, error) {
	d, ok, err := a.svc.Deletions().Status(r.Context(), r.PathValue("deleteId"))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, mxerr.NotFound("delete id '%s' not found", r.PathValue("deleteId"))
	}
	out := deletionStatus(d)
	delete(out, "delete_id")
	return out, nil
}

// parseListQuery reads the room list's parameters.
func parseListQuery(q url.Values) (roomadmin.ListQuery, error) {
	var query roomadmin.ListQuery
	var err error
	if query.From, err = nonNegative(q.Get("from"), 0, "from"); err != nil {
		return query, err
	}
	if query.Limit, err = nonNegative(q.Get("limit"), 100, "limit"); err != nil {
		return query, err
	}
	query.OrderBy = q.Get("order_by")
	if _, ok := roomadmin.OrderBys[query.OrderBy]; query.OrderBy != "" && !ok {
		return query, mxerr.InvalidParam("Unknown value for order_by: %s", query.OrderBy)
	}
	if q.Has("search_term") {
		if query.Search = q.Get("search_term"); query.Search == "" {
			return query, mxerr.InvalidParam("search_term cannot be an empty string")
		}
	}
	switch q.Get("dir") {
	case "", "f":
	case "b":
		query.Backwards = true
	default:
		return query, mxerr.InvalidParam("Unknown direction: %s", q.Get("dir"))
	}
	for name, dst := range map[string]**bool{"public_rooms": &query.Public, "empty_rooms": &query.Empty} {
		if v := q.Get(name); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return query, mxerr.InvalidParam("Query parameter %s must be true or false", name)
			}
			*dst = &b
		}
	}
	return query, nil
}

// page is an admin /messages request's parameters.
type page struct {
	backwards bool
	from, to  int64
	limit     int
	filter    *filter.RoomEventFilter
}

// parsePageQuery reads /messages' dir, from, to, limit and filter;
// current is the stream's position.
func parsePageQuery(q url.Values, current int64) (page, error) {
	backwards := false
	switch q.Get("dir") {
	case "", "f":
	case "b":
		backwards = true
	default:
		return page{}, mxerr.InvalidParam("Unknown direction: %s", q.Get("dir"))
	}
	from, to := int64(rooms.NoBound), int64(rooms.NoBound)
	if backwards {
		from = current
	}
	if f := q.Get("from"); f != "" {
		tok, err := clientsync.ParsePageToken(f)
		if err != nil {
			return page{}, err
		}
		from = min(tok.Events, current)
	}
	if t := q.Get("to"); t != "" {
		tok, err := clientsync.ParsePageToken(t)
		if err != nil {
			return page{}, err
		}
		to = tok.Events
	}
	limit, err := nonNegative(q.Get("limit"), 10, "limit")
	if err != nil {
		return page{}, err
	}
	limit = min(limit, maxMessages)
	rf := &filter.RoomEventFilter{}
	if f := q.Get("filter"); f != "" {
		if rf, err = filter.ParseRoomEventFilter([]byte(f)); err != nil {
			return page{}, err
		}
	}
	return page{backwards: backwards, from: from, to: to, limit: limit, filter: rf}, nil
}
