package federation

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/directory"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
)

// The query endpoints: what other servers ask about this server's users,
// aliases, published rooms and spaces on their users' behalf.

// AliasResolver resolves this server's room aliases (the aliases
// service).
type AliasResolver interface {
	// Resolve is the room a local alias points at (M_NOT_FOUND if none).
	Resolve(ctx context.Context, alias string) (roomID, creator string, err error)
}

// ProfileSource gives local users' profiles (M_NOT_FOUND for unknown
// users), as the client API's profile endpoints store them.
type ProfileSource interface {
	Profile(ctx context.Context, localpart string) (map[string]json.RawMessage, error)
}

func (a *API) registerQueries(rt *httpapi.Router) {
	add := func(method, path string, h func(*Request) (any, error)) {
		rt.Add(httpapi.Route{Method: method, Path: federationV1 + path, Handler: a.signed(h)})
	}
	add(http.MethodGet, "/query/profile", a.queryProfile)
	add(http.MethodGet, "/query/directory", a.queryDirectory)
	add(http.MethodGet, "/publicRooms", a.getPublicRooms)
	add(http.MethodPost, "/publicRooms", a.postPublicRooms)
	add(http.MethodGet, "/hierarchy/{roomId}", a.hierarchy)
}

// queryProfile serves GET /query/profile: a local user's whole profile,
// or the one field asked (M_NOT_FOUND when it is not set).
func (a *API) queryProfile(r *Request) (any, error) {
	q := r.URL.Query()
	userID := q.Get("user_id")
	if userID == "" {
		return nil, mxerr.MissingParam("Missing user_id parameter")
	}
	uid, err := spec.NewUserID(userID, true)
	if err != nil {
		return nil, mxerr.InvalidParam("Invalid user_id")
	}
	if string(uid.Domain()) != a.d.ServerName {
		return nil, mxerr.InvalidParam("User is not hosted on this homeserver")
	}
	profile, err := a.d.Profiles.Profile(r.Context(), uid.Local())
	if err != nil {
		return nil, err
	}
	field := q.Get("field")
	if field == "" {
		return profile, nil
	}
	v, ok := profile[field]
	if !ok {
		return nil, mxerr.NotFound("Profile field %s not found", field)
	}
	return map[string]json.RawMessage{field: v}, nil
}

// queryDirectory serves GET /query/directory: the room a local alias
// names and the servers in it, this server first.
func (a *API) queryDirectory(r *Request) (any, error) {
	ctx := r.Context()
	alias := r.URL.Query().Get("room_alias")
	if alias == "" {
		return nil, mxerr.MissingParam("Missing room_alias parameter")
	}
	local, domain, ok := strings.Cut(strings.TrimPrefix(alias, "#"), ":")
	if !strings.HasPrefix(alias, "#") || !ok || local == "" {
		return nil, mxerr.InvalidParam("Invalid room alias")
	}
	if domain != a.d.ServerName {
		return nil, mxerr.InvalidParam("Room alias is not hosted on this homeserver")
	}
	roomID, _, err := a.d.Aliases.Resolve(ctx, alias)
	if err != nil {
		return nil, err
	}
	state, err := a.d.Rooms.CurrentState(ctx, roomID)
	if err != nil {
		return nil, err
	}
	inRoom, err := a.d.Rooms.ServersInRoom(ctx, state)
	if err != nil {
		return nil, err
	}
	slices.Sort(inRoom)
	servers := []string{a.d.ServerName}
	for _, s := range inRoom {
		if s != a.d.ServerName {
			servers = append(servers, s)
		}
	}
	return map[string]any{"room_id": roomID, "servers": servers}, nil
}

// getPublicRooms and postPublicRooms serve the published room directory
// as the client API's /publicRooms lists it.
func (a *API) getPublicRooms(r *Request) (any, error) {
	q := r.URL.Query()
	req, err := directory.PublicRoomsQueryFromURL(q)
	if err != nil {
		return nil, err
	}
	return a.d.Directory.PublicRooms(r.Context(), req)
}

func (a *API) postPublicRooms(r *Request) (any, error) {
	var req directory.PublicRoomsQuery
	if err := httpapi.DecodeObject(r.Content, &req); err != nil {
		return nil, err
	}
	return a.d.Directory.PublicRooms(r.Context(), req)
}

// hierarchy serves GET /hierarchy/{roomId}: a room of this server the
// requesting server may see, its children if it is a space, and which of
// the children this server knows but the other may not see (Synapse's
// get_federation_hierarchy; children this server is not in are left
// out).
func (a *API) hierarchy(r *Request) (any, error) {
	ctx := r.Context()
	suggested := r.URL.Query().Get("suggested_only") == "true"
	root, ok, err := a.roomForServer(ctx, r.PathValue("roomId"), r.Origin)
	if err != nil {
		return nil, err
	}
	if root == nil || !ok {
		return nil, mxerr.NotFound("Unknown room: %s", r.PathValue("roomId"))
	}
	var children []directory.Summary
	inaccessible := []string{}
	var childEvs []*rooms.Event
	if root.Summary.RoomType == "m.space" {
		if childEvs, err = a.d.Directory.SpaceChildren(ctx, root.State, suggested); err != nil {
			return nil, err
		}
	}
	for _, ch := range childEvs {
		d, ok, err := a.roomForServer(ctx, *ch.StateKey(), r.Origin)
		switch {
		case err != nil:
			return nil, err
		case d == nil:
		case ok:
			children = append(children, d.Summary)
		default:
			inaccessible = append(inaccessible, d.Summary.RoomID)
		}
	}
	if children == nil {
		children = []directory.Summary{}
	}
	return map[string]any{"room": directory.NewHierarchyRoom(root, childEvs), "children": children,
		"inaccessible_children": inaccessible}, nil
}

// roomForServer describes a room of this server (nil for rooms it does
// not know) and whether a server may see it, as Synapse's
// _is_local_room_accessible: a public, knockable or world-readable room;
// a room the server has a member joined or invited to; a restricted room
// whose allowed rooms have the server in them.
func (a *API) roomForServer(ctx context.Context, roomID, server string) (*directory.Room, bool, error) {
	d, err := a.d.Directory.Describe(ctx, roomID)
	if err != nil {
		if _, ok := mxerr.As(err); ok {
			return nil, false, nil
		}
		return nil, false, err
	}
	ok, err := a.d.Directory.ServerMayView(ctx, d, server)
	if err != nil {
		return nil, false, err
	}
	return d, ok, nil
}
