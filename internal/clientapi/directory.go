package clientapi

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/myelin-chat/myelin/internal/aliases"
	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/directory"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

func (a *API) registerDirectory(rt *httpapi.Router) {
	route := func(method, path string, auth httpapi.AuthMode, guest bool, h httpapi.Handler) {
		legacy(rt, httpapi.Route{Method: method, Path: path, Auth: auth, AllowGuest: guest, Handler: h})
	}
	route(http.MethodGet, "/directory/room/{roomAlias}", httpapi.AuthOptional, false, a.getAlias)
	route(http.MethodPut, "/directory/room/{roomAlias}", httpapi.AuthRequired, false, a.putAlias)
	route(http.MethodDelete, "/directory/room/{roomAlias}", httpapi.AuthRequired, false, a.deleteAlias)
	route(http.MethodGet, "/rooms/{roomId}/aliases", httpapi.AuthRequired, false, a.roomAliases)
	// MSC2432's path, which org.matrix.msc2432 in /versions announces.
	unstable(rt, httpapi.Route{Method: http.MethodGet, Auth: httpapi.AuthRequired, Handler: a.roomAliases}, "/org.matrix.msc2432/rooms/{roomId}/aliases")
	route(http.MethodGet, "/directory/list/room/{roomId}", httpapi.AuthNone, false, a.getDirectoryVisibility)
	route(http.MethodPut, "/directory/list/room/{roomId}", httpapi.AuthRequired, false, a.putDirectoryVisibility)
	route(http.MethodGet, "/publicRooms", httpapi.AuthOptional, false, a.getPublicRooms)
	route(http.MethodPost, "/publicRooms", httpapi.AuthRequired, true, a.postPublicRooms)
}

// getAlias resolves an alias: this server's from its table, another
// server's by asking it (/query/directory).
func (a *API) getAlias(r *http.Request, _ *httpapi.Caller) (any, error) {
	alias := r.PathValue("roomAlias")
	server, err := aliases.Check(alias)
	if err != nil {
		return nil, err
	}
	if server != a.cfg.ServerName && a.federation != nil {
		roomID, servers, err := a.federation.ResolveAlias(r.Context(), alias)
		if err != nil {
			return nil, err
		}
		return map[string]any{"room_id": roomID, "servers": servers}, nil
	}
	roomID, servers, err := a.lookupLocalAlias(r.Context(), alias)
	if err != nil {
		return nil, err
	}
	return map[string]any{"room_id": roomID, "servers": servers}, nil
}

func (a *API) putAlias(r *http.Request, c *httpapi.Caller) (any, error) {
	alias := r.PathValue("roomAlias")
	if _, err := aliases.Check(alias); err != nil {
		return nil, err
	}
	var body struct {
		RoomID string `json:"room_id"`
	}
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return nil, err
	}
	if body.RoomID == "" {
		return nil, mxerr.BadJSON("Missing params: room_id")
	}
	if err := a.appservices.CheckAliasFree(alias, a.appservices.ByID(c.AppService)); err != nil {
		return nil, err
	}
	return empty, a.aliases.Create(r.Context(), c.UserID, c.IsAdmin, alias, body.RoomID)
}

func (a *API) deleteAlias(r *http.Request, c *httpapi.Caller) (any, error) {
	return empty, a.aliases.Delete(r.Context(), c.UserID, c.IsAdmin, r.PathValue("roomAlias"))
}

// roomAliases lists a room's local aliases, for members, server admins
// and anyone when the room is world-readable.
func (a *API) roomAliases(r *http.Request, c *httpapi.Caller) (any, error) {
	ctx := r.Context()
	roomID := r.PathValue("roomId")
	if !c.IsAdmin {
		if err := a.rooms.MayReadCurrent(ctx, roomID, c.UserID); err != nil {
			return nil, err
		}
	}
	list, err := a.aliases.ForRoom(ctx, roomID)
	if err != nil {
		return nil, err
	}
	return map[string][]string{"aliases": list}, nil
}

func (a *API) getDirectoryVisibility(r *http.Request, _ *httpapi.Caller) (any, error) {
	published, err := a.dir.Published(r.Context(), r.PathValue("roomId"))
	if err != nil {
		return nil, err
	}
	visibility := "private"
	if published {
		visibility = "public"
	}
	return map[string]string{"visibility": visibility}, nil
}

func (a *API) putDirectoryVisibility(r *http.Request, c *httpapi.Caller) (any, error) {
	var body struct {
		Visibility *string `json:"visibility"`
	}
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return nil, err
	}
	visibility := "public"
	if body.Visibility != nil {
		visibility = *body.Visibility
	}
	if visibility != "public" && visibility != "private" {
		return nil, mxerr.InvalidParam("Invalid visibility setting")
	}
	ctx := r.Context()
	roomID := r.PathValue("roomId")
	if _, err := a.dir.Published(ctx, roomID); err != nil {
		return nil, err
	}
	ok, err := a.dir.MayEditListing(ctx, c.UserID, c.IsAdmin, roomID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, mxerr.Forbidden("This server requires you to be a moderator in the room to edit its room list entry")
	}
	return empty, a.dir.SetPublished(ctx, roomID, visibility == "public")
}

func (a *API) getPublicRooms(r *http.Request, c *httpapi.Caller) (any, error) {
	q := r.URL.Query()
	req, err := directory.PublicRoomsQueryFromURL(q)
	if err != nil {
		return nil, err
	}
	req.Viewer = viewerOf(c)
	return a.publicRooms(r.Context(), q.Get("server"), req)
}

func (a *API) postPublicRooms(r *http.Request, c *httpapi.Caller) (any, error) {
	var req directory.PublicRoomsQuery
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return nil, err
	}
	req.Viewer = viewerOf(c)
	return a.publicRooms(r.Context(), r.URL.Query().Get("server"), req)
}

// viewerOf is the user a directory is listed for ("" when anonymous):
// their own reputation filter hides rooms from it.
func viewerOf(c *httpapi.Caller) string {
	if c == nil {
		return ""
	}
	return c.UserID
}

// publicRooms lists the published rooms (directory.Service.PublicRooms).
// Another server's directory is empty: the server cannot ask it yet.
func (a *API) publicRooms(ctx context.Context, server string, req directory.PublicRoomsQuery) (any, error) {
	if server != "" && server != a.cfg.ServerName {
		if config.ValidateServerName(server) != nil {
			return nil, mxerr.InvalidParam("Invalid server name %q", server)
		}
		if a.federation == nil {
			return directory.PublicRoomsResponse{Chunk: []directory.Summary{}}, nil
		}
		raw, err := json.Marshal(req)
		if err != nil {
			return nil, err
		}
		var body map[string]any
		if err := json.Unmarshal(raw, &body); err != nil {
			return nil, err
		}
		for k, v := range body {
			if v == nil {
				delete(body, k)
			}
		}
		resp, err := a.federation.PublicRooms(ctx, server, body)
		if err == nil {
			// Also for anonymous callers (Viewer ""): the server's own
			// feeds hide a room from everyone, as in its own directory.
			a.hideFilteredRooms(ctx, req.Viewer, resp)
		}
		return resp, err
	}
	return a.dir.PublicRooms(ctx, req)
}

// hideFilteredRooms leaves out of another server's directory page the
// rooms the reputation feeds (the server's, or the viewer's own) list,
// as this server's own directory does.
func (a *API) hideFilteredRooms(ctx context.Context, viewer string, resp map[string]any) {
	chunk, ok := resp["chunk"].([]any)
	if !ok {
		return
	}
	kept := chunk[:0]
	for _, e := range chunk {
		if m, ok := e.(map[string]any); ok {
			if id, _ := m["room_id"].(string); id != "" && a.dir.HiddenFor(ctx, viewer, id) {
				continue
			}
		}
		kept = append(kept, e)
	}
	resp["chunk"] = kept
}
