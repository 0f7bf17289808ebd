package clientapi

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

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

// maxHierarchyRooms caps a hierarchy page (Synapse's MAX_ROOMS); it is
// also the default limit.
const maxHierarchyRooms = 50

// hierarchyToken is the state a hierarchy page token carries: the walk is
// recomputed from the current state and the rooms already returned are
// skipped, so that no session needs storing.
type hierarchyToken struct {
	Room      string `json:"r"`
	Suggested bool   `json:"s"`
	MaxDepth  int    `json:"d"`
	Skip      int    `json:"n"`
}

func (t hierarchyToken) String() string {
	raw, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(raw)
}

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

// parseHierarchyRequest reads a hierarchy request's parameters into the
// token of the page asked for, and the page size.
func parseHierarchyRequest(q url.Values, root string) (hierarchyToken, int, error) {
	tok := hierarchyToken{Room: root, Suggested: q.Get("suggested_only") == "true", MaxDepth: -1}
	if s := q.Get("max_depth"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return tok, 0, mxerr.InvalidParam("max_depth must be a non-negative integer")
		}
		tok.MaxDepth = n
	}
	limit := maxHierarchyRooms
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return tok, 0, mxerr.InvalidParam("limit must be an integer greater than zero")
		}
		limit = min(n, maxHierarchyRooms)
	}
	if from := q.Get("from"); from != "" {
		var prev hierarchyToken
		raw, err := base64.RawURLEncoding.DecodeString(from)
		if err != nil || json.Unmarshal(raw, &prev) != nil || prev.Skip < 0 {
			return tok, 0, mxerr.InvalidParam("Unknown pagination token")
		}
		if prev.Room != tok.Room || prev.Suggested != tok.Suggested || prev.MaxDepth != tok.MaxDepth {
			return tok, 0, mxerr.InvalidParam("suggested_only and max_depth cannot change on paginated requests")
		}
		tok.Skip = prev.Skip
	}
	return tok, limit, nil
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
