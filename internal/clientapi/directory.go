package clientapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"
	"unicode"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/directory"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

func (a *API) registerDirectory(rt *httpapi.Router) {
	route := func(method, path string, auth httpapi.AuthMode, guest bool, h httpapi.Handler) {
		legacy(rt, httpapi.Route{Method: method, Path: path, Auth: auth, AllowGuest: guest, Handler: h})
	}
	route(http.MethodGet, "/directory/room/{roomAlias}", httpapi.AuthOptional, false, a.getAlias)
	route(http.MethodPut, "/directory/room/{roomAlias}", httpapi.AuthRequired, false, a.putAlias)
	route(http.MethodDelete, "/directory/room/{roomAlias}", httpapi.AuthRequired, false, a.deleteAlias)
	route(http.MethodGet, "/rooms/{roomId}/aliases", httpapi.AuthRequired, false, a.roomAliases)
	route(http.MethodGet, "/directory/list/room/{roomId}", httpapi.AuthNone, false, a.getDirectoryVisibility)
	route(http.MethodPut, "/directory/list/room/{roomId}", httpapi.AuthRequired, false, a.putDirectoryVisibility)
	route(http.MethodGet, "/publicRooms", httpapi.AuthOptional, false, a.getPublicRooms)
	route(http.MethodPost, "/publicRooms", httpapi.AuthRequired, true, a.postPublicRooms)
}

// maxAliasLength is Synapse's limit on room aliases.
const maxAliasLength = 255

// checkAlias validates a room alias, returning its server name.
func checkAlias(alias string) (string, error) {
	local, server, ok := strings.Cut(strings.TrimPrefix(alias, "#"), ":")
	if !strings.HasPrefix(alias, "#") || !ok || local == "" || server == "" {
		return "", mxerr.InvalidParam("Room alias invalid")
	}
	if strings.ContainsFunc(local, unicode.IsSpace) {
		return "", mxerr.InvalidParam("Invalid characters in room alias")
	}
	if config.ValidateServerName(server) != nil {
		return "", mxerr.InvalidParam("Room alias invalid: bad server name")
	}
	return server, nil
}

// getAlias resolves an alias: this server's from its table, another
// server's by asking it (/query/directory).
func (a *API) getAlias(r *http.Request, _ *httpapi.Caller) (any, error) {
	alias := r.PathValue("roomAlias")
	server, err := checkAlias(alias)
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
	roomID, _, err := a.roomStore.ResolveAlias(r.Context(), alias)
	if errors.Is(err, store.ErrNotFound) {
		return nil, mxerr.NotFound("Room alias %s not found", alias)
	}
	if err != nil {
		return nil, err
	}
	servers, err := a.roomServers(r.Context(), roomID)
	if err != nil {
		return nil, err
	}
	return map[string]any{"room_id": roomID, "servers": servers}, nil
}

// roomServers lists the servers of a room's joined members, this server
// first.
func (a *API) roomServers(ctx context.Context, roomID string) ([]string, error) {
	members, err := a.roomStore.RoomMembers(ctx, roomID)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{a.cfg.ServerName: true}
	var others []string
	for _, m := range members {
		if m.Membership != spec.Join {
			continue
		}
		if _, server, ok := strings.Cut(m.RoomID, ":"); ok && !seen[server] { // RoomID holds the user ID here
			seen[server] = true
			others = append(others, server)
		}
	}
	sort.Strings(others)
	return append([]string{a.cfg.ServerName}, others...), nil
}

func (a *API) putAlias(r *http.Request, c *httpapi.Caller) (any, error) {
	alias := r.PathValue("roomAlias")
	server, err := checkAlias(alias)
	if err != nil {
		return nil, err
	}
	if len(alias) > maxAliasLength {
		return nil, mxerr.InvalidParam("Can't create aliases longer than %d characters", maxAliasLength)
	}
	if server != a.cfg.ServerName {
		return nil, mxerr.InvalidParam("Room alias must be local")
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
	if _, err := a.rooms.RoomVersion(r.Context(), body.RoomID); err != nil {
		return nil, err
	}
	if !c.IsAdmin {
		// Synapse's require_membership_for_aliases, on by default.
		if m, err := a.rooms.MembershipOf(r.Context(), body.RoomID, c.UserID); err != nil {
			return nil, err
		} else if m != spec.Join {
			return nil, mxerr.Forbidden("You must be in the room to create an alias for it")
		}
	}
	err = a.roomStore.CreateAlias(r.Context(), alias, body.RoomID, c.UserID)
	if errors.Is(err, store.ErrConflict) {
		return nil, &mxerr.Error{Status: http.StatusConflict, Code: "M_UNKNOWN", Message: "Room alias " + alias + " already exists"}
	}
	if err != nil {
		return nil, err
	}
	return empty, nil
}

// deleteAlias removes an alias. Its creator, server admins and room
// members who may change the canonical alias may; the room's canonical
// alias event then loses the alias when the user may send it.
func (a *API) deleteAlias(r *http.Request, c *httpapi.Caller) (any, error) {
	alias := r.PathValue("roomAlias")
	if _, err := checkAlias(alias); err != nil {
		return nil, err
	}
	ctx := r.Context()
	roomID, creator, err := a.roomStore.ResolveAlias(ctx, alias)
	if errors.Is(err, store.ErrNotFound) {
		return nil, mxerr.NotFound("Room alias %s not found", alias)
	}
	if err != nil {
		return nil, err
	}
	if creator != c.UserID {
		ok, err := a.canChangeRoomList(ctx, c, roomID)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, mxerr.Forbidden("You don't have permission to delete the alias")
		}
	}
	if err := a.roomStore.DeleteAlias(ctx, alias); errors.Is(err, store.ErrNotFound) {
		return nil, mxerr.NotFound("Room alias %s not found", alias)
	} else if err != nil {
		return nil, err
	}
	if err := a.dropCanonicalAlias(ctx, c.UserID, roomID, alias); err != nil {
		if _, ok := mxerr.As(err); !ok {
			return nil, err
		}
		// The user may not change the canonical alias: the alias is
		// deleted all the same, as the spec recommends.
	}
	return empty, nil
}

// dropCanonicalAlias removes an alias from the room's m.room.canonical_alias
// event (alias and alt_aliases), sending the change as userID.
func (a *API) dropCanonicalAlias(ctx context.Context, userID, roomID, alias string) error {
	state, err := a.rooms.CurrentState(ctx, roomID)
	if err != nil {
		return err
	}
	ev, err := a.rooms.StateEvent(ctx, state, "m.room.canonical_alias", "")
	if err != nil || ev == nil {
		return err
	}
	content := map[string]json.RawMessage{}
	if json.Unmarshal(ev.Content(), &content) != nil {
		return nil
	}
	changed := false
	var cur string
	if json.Unmarshal(content["alias"], &cur) == nil && cur == alias {
		delete(content, "alias")
		changed = true
	}
	var alt []string
	if raw, ok := content["alt_aliases"]; ok && json.Unmarshal(raw, &alt) == nil {
		kept := alt[:0:0]
		for _, al := range alt {
			if al != alias {
				kept = append(kept, al)
			}
		}
		if len(kept) != len(alt) {
			changed = true
			if len(kept) == 0 {
				delete(content, "alt_aliases")
			} else {
				content["alt_aliases"], _ = json.Marshal(kept)
			}
		}
	}
	if !changed {
		return nil
	}
	raw, _ := json.Marshal(content)
	key := ""
	_, err = a.rooms.Send(ctx, rooms.SendRequest{RoomID: roomID, Sender: userID, Type: "m.room.canonical_alias", StateKey: &key, Content: json.RawMessage(raw)})
	return err
}

// canChangeRoomList is Synapse's check for editing a room's directory
// entry or deleting others' aliases: a server admin, or a joined member
// whose power level lets them send m.room.canonical_alias.
func (a *API) canChangeRoomList(ctx context.Context, c *httpapi.Caller, roomID string) (bool, error) {
	if c.IsAdmin {
		return true, nil
	}
	state, err := a.rooms.CurrentState(ctx, roomID)
	if err != nil {
		if _, ok := mxerr.As(err); ok {
			return false, nil
		}
		return false, err
	}
	if m, err := a.rooms.MembershipIn(ctx, state, c.UserID); err != nil || m != spec.Join {
		return false, err
	}
	pl, err := a.rooms.PowerLevels(ctx, state)
	if err != nil {
		return false, err
	}
	return pl.UserLevel(spec.SenderID(c.UserID)) >= pl.EventLevel("m.room.canonical_alias", true), nil
}

// roomAliases lists a room's local aliases, for members, server admins
// and anyone when the room is world-readable.
func (a *API) roomAliases(r *http.Request, c *httpapi.Caller) (any, error) {
	ctx := r.Context()
	roomID := r.PathValue("roomId")
	if !c.IsAdmin {
		state, err := a.rooms.CurrentState(ctx, roomID)
		if err != nil {
			if _, ok := mxerr.As(err); ok {
				return nil, mxerr.Forbidden("You are not in this room")
			}
			return nil, err
		}
		m, err := a.rooms.MembershipIn(ctx, state, c.UserID)
		if err != nil {
			return nil, err
		}
		if m != spec.Join {
			peek, err := a.rooms.CanPeek(ctx, state)
			if err != nil {
				return nil, err
			}
			if !peek {
				return nil, mxerr.Forbidden("You are not in this room")
			}
		}
	}
	aliases, err := a.roomStore.RoomAliases(ctx, roomID)
	if err != nil {
		return nil, err
	}
	return map[string][]string{"aliases": aliases}, nil
}

func (a *API) getDirectoryVisibility(r *http.Request, _ *httpapi.Caller) (any, error) {
	published, err := a.roomStore.RoomPublished(r.Context(), r.PathValue("roomId"))
	if errors.Is(err, store.ErrNotFound) {
		return nil, mxerr.NotFound("Room not found")
	}
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
	if _, err := a.roomStore.RoomPublished(ctx, roomID); errors.Is(err, store.ErrNotFound) {
		return nil, mxerr.NotFound("Room not found")
	} else if err != nil {
		return nil, err
	}
	ok, err := a.canChangeRoomList(ctx, c, roomID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, mxerr.Forbidden("This server requires you to be a moderator in the room to edit its room list entry")
	}
	return empty, a.publishRoom(ctx, roomID, visibility == "public")
}

// accessible reports whether a user (or, for "", an anonymous caller)
// may see a room's summary, as the spec's space hierarchy rules say: they
// are joined, invited or knocking; the room is public, knockable or
// world-readable; or it is restricted to a room they are joined to. It
// also returns the user's membership.
func (a *API) accessible(ctx context.Context, d *directory.Room, userID string) (string, bool, error) {
	membership := ""
	if userID != "" {
		var err error
		if membership, err = a.rooms.MembershipIn(ctx, d.State, userID); err != nil {
			return "", false, err
		}
	}
	switch {
	case membership == spec.Join || membership == spec.Invite || membership == spec.Knock:
		return membership, true, nil
	case d.Summary.WorldReadable:
		return membership, true, nil
	}
	switch d.Summary.JoinRule {
	case spec.Public, spec.Knock, spec.KnockRestricted:
		return membership, true, nil
	case spec.Restricted:
		if userID == "" {
			return membership, false, nil
		}
		for _, id := range d.Summary.AllowedRoomIDs {
			if m, err := a.rooms.MembershipOf(ctx, id, userID); err != nil {
				return "", false, err
			} else if m == spec.Join {
				return membership, true, nil
			}
		}
	}
	return membership, false, nil
}

func (a *API) getPublicRooms(r *http.Request, _ *httpapi.Caller) (any, error) {
	q := r.URL.Query()
	req, err := directory.PublicRoomsQueryFromURL(q)
	if err != nil {
		return nil, err
	}
	return a.publicRooms(r.Context(), q.Get("server"), req)
}

func (a *API) postPublicRooms(r *http.Request, _ *httpapi.Caller) (any, error) {
	var req directory.PublicRoomsQuery
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return nil, err
	}
	return a.publicRooms(r.Context(), r.URL.Query().Get("server"), req)
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
		return a.federation.PublicRooms(ctx, server, body)
	}
	return a.dir.PublicRooms(ctx, req)
}
