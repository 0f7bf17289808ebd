package admin

import (
	"net/http"
	"net/url"

	"github.com/myelin-chat/myelin/internal/clientsync"
	"github.com/myelin-chat/myelin/internal/directory"
	"github.com/myelin-chat/myelin/internal/filter"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/rooms"
)

// The admin's views of a room the client API also has: /context around
// an event and the space /hierarchy, without the caller's membership
// and the rooms' visibility in the way (Synapse's admin room context
// and room hierarchy).

func (a *Rooms) registerViews(rt *httpapi.Router) {
	const v1 = "/_synapse/admin/v1/rooms"
	add := func(path string, h httpapi.Handler) {
		rt.Add(httpapi.Route{Method: http.MethodGet, Path: path, Auth: httpapi.AuthRequired, Handler: adminOnly(h)})
	}
	add(v1+"/{roomId}/context/{eventId}", a.eventContext)
	add(v1+"/{roomId}/hierarchy", a.hierarchy)
}

// contextQuery is an admin /context's limit and filter.
type contextQuery struct {
	limit  int
	filter *filter.RoomEventFilter
}

// parseContextQuery reads /context's limit (10 by default, capped as
// /messages) and filter.
func parseContextQuery(q url.Values) (contextQuery, error) {
	limit, err := nonNegative(q.Get("limit"), 10, "limit")
	if err != nil {
		return contextQuery{}, err
	}
	rf := &filter.RoomEventFilter{}
	if f := q.Get("filter"); f != "" {
		if rf, err = filter.ParseRoomEventFilter([]byte(f)); err != nil {
			return contextQuery{}, err
		}
	}
	return contextQuery{limit: min(limit, maxMessages), filter: rf}, nil
}

// eventContext is GET /_synapse/admin/v1/rooms/{roomId}/context/{eventId}:
// the client /context's answer (event, events_before, events_after,
// state, start, end) over every accepted event of the room, as the
// admin /messages reads it.
func (a *Rooms) eventContext(r *http.Request, c *httpapi.Caller) (any, error) {
	roomID := r.PathValue("roomId")
	cq, err := parseContextQuery(r.URL.Query())
	if err != nil {
		return nil, err
	}
	rf := cq.filter
	w, err := a.svc.Context(r.Context(), roomID, r.PathValue("eventId"), cq.limit, rf.LazyLoadMembers, func(ev *rooms.Event) bool {
		return rf.Allows(ev.Type(), ev.Sender(), roomID, ev.HasURL)
	})
	if err != nil {
		return nil, err
	}
	return clientsync.RenderContext(r.Context(), a.render, w, viewer(c), c.UserID)
}

// hierarchy is GET /_synapse/admin/v1/rooms/{roomId}/hierarchy: the
// client /hierarchy's answer (rooms, next_batch; from, limit,
// max_depth, suggested_only) over every room this server knows in the
// space, whatever the admin's membership.
func (a *Rooms) hierarchy(r *http.Request, c *httpapi.Caller) (any, error) {
	root := r.PathValue("roomId")
	tok, limit, err := directory.ParseHierarchyQuery(r.URL.Query(), root)
	if err != nil {
		return nil, err
	}
	page, more, err := a.svc.Hierarchy(r.Context(), directory.HierarchyRequest{Root: root, UserID: c.UserID,
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
