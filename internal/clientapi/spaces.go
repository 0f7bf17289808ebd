package clientapi

import (
	"encoding/base64"
	"net/http"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/directory"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

func (a *API) registerSpaces(rt *httpapi.Router) {
	v1(rt, httpapi.Route{Method: http.MethodGet, Path: "/rooms/{roomId}/hierarchy", Auth: httpapi.AuthRequired, AllowGuest: true, Handler: a.hierarchy})
	// mautrix-go asks MSC3266's path until v1.15 is advertised;
	// matrix-js-sdk asks MSC2666's.
	v1(rt, httpapi.Route{Method: http.MethodGet, Path: "/room_summary/{roomIdOrAlias}", Auth: httpapi.AuthOptional, Handler: a.roomSummary},
		"/im.nheko.summary/summary/{roomIdOrAlias}", "/im.nheko.summary/rooms/{roomIdOrAlias}/summary")
	v1(rt, httpapi.Route{Method: http.MethodGet, Path: "/mutual_rooms", Auth: httpapi.AuthRequired, Handler: a.mutualRooms},
		"/uk.half-shot.msc2666/user/mutual_rooms")
}

// The hierarchy's page token and parameters are directory's, shared
// with the admin hierarchy.
type hierarchyToken = directory.HierarchyToken

var parseHierarchyRequest = directory.ParseHierarchyQuery

const maxHierarchyRooms = directory.MaxHierarchyRooms

// hierarchy serves GET /hierarchy: a page of the walk of a space
// (directory.Spaces.Hierarchy), the root included when the user may see it.
func (a *API) hierarchy(r *http.Request, c *httpapi.Caller) (any, error) {
	ctx := r.Context()
	root := r.PathValue("roomId")
	tok, limit, err := parseHierarchyRequest(r.URL.Query(), root)
	if err != nil {
		return nil, err
	}
	page, more, err := a.spaces.Hierarchy(ctx, directory.HierarchyRequest{Root: root, UserID: c.UserID,
		SuggestedOnly: tok.Suggested, MaxDepth: tok.MaxDepth, Skip: tok.Skip, Limit: limit})
	if err != nil {
		return nil, err
	}
	resp := map[string]any{"rooms": page}
	if more {
		next := tok
		next.Skip = tok.Skip + limit
		resp["next_batch"] = next.String()
	}
	return resp, nil
}

// roomSummary is GET /room_summary/{roomIdOrAlias}: the summary of a room
// the caller may see (joined, invited, knocking; a public, knockable or
// world-readable room; a restricted room they may join), 404 otherwise.
// Anonymous callers see public, knockable and world-readable rooms.
func (a *API) roomSummary(r *http.Request, c *httpapi.Caller) (any, error) {
	ctx := r.Context()
	via, err := viaServers(r)
	if err != nil {
		return nil, err
	}
	roomID, aliasServers, err := a.resolveRoomVia(ctx, r.PathValue("roomIdOrAlias"))
	if err != nil {
		return nil, err
	}
	userID := ""
	if c != nil {
		userID = c.UserID
	}
	sum, membership, err := a.spaces.RoomSummary(ctx, roomID, userID, append(via, aliasServers...))
	if err != nil {
		return nil, err
	}
	out := struct {
		directory.Summary
		Membership string `json:"membership,omitempty"`
	}{Summary: sum}
	if c != nil {
		out.Membership = membership
		if out.Membership == "" {
			out.Membership = spec.Leave
		}
	}
	return out, nil
}

// mutualRoomsBatch is how many rooms a /mutual_rooms page holds: few
// users share more, and a page stays cheap to compute.
const mutualRoomsBatch = 20

// mutualRooms lists the rooms the caller and another user are both
// joined to, in room ID order; next_batch names the last room returned.
func (a *API) mutualRooms(r *http.Request, c *httpapi.Caller) (any, error) {
	q := r.URL.Query()
	other := q.Get("user_id")
	if other == "" {
		return nil, mxerr.MissingParam("Missing parameter: user_id")
	}
	if _, err := spec.NewUserID(other, true); err != nil {
		return nil, mxerr.InvalidParam("The user ID provided was invalid")
	}
	if other == c.UserID {
		return nil, mxerr.InvalidParam("You cannot request a list of shared rooms with yourself")
	}
	after := ""
	if from := q.Get("from"); from != "" {
		raw, err := base64.RawURLEncoding.DecodeString(from)
		if err != nil || len(raw) < 2 || raw[0] != '!' {
			return nil, mxerr.InvalidParam("Invalid from token")
		}
		after = string(raw)
	}
	ctx := r.Context()
	ids, count, err := a.membership.MutualRooms(ctx, c.UserID, other, after, mutualRoomsBatch+1)
	if err != nil {
		return nil, err
	}
	resp := map[string]any{"count": count}
	if len(ids) > mutualRoomsBatch {
		ids = ids[:mutualRoomsBatch]
		resp["next_batch"] = base64.RawURLEncoding.EncodeToString([]byte(ids[len(ids)-1]))
	}
	resp["joined"] = ids
	return resp, nil
}
