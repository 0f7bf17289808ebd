package clientapi

import (
	"net/http"

	"github.com/myelin-chat/myelin/internal/clientsync"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/relations"
)

// maxRelationDepth is how far recurse=true follows relations of
// relations (the spec asks for at least 3; Synapse uses 3).
const maxRelationDepth = 3

// defaultRelationsLimit is the page size of /relations and /threads
// when the client gives none (Synapse's).
const defaultRelationsLimit = 5

func (a *API) registerRelations(rt *httpapi.Router) {
	for _, p := range []string{
		"/rooms/{roomId}/relations/{eventId}",
		"/rooms/{roomId}/relations/{eventId}/{relType}",
		"/rooms/{roomId}/relations/{eventId}/{relType}/{eventType}",
	} {
		v1(rt, httpapi.Route{Method: http.MethodGet, Path: p, Auth: httpapi.AuthRequired, AllowGuest: true, Handler: a.relations})
	}
	v1(rt, httpapi.Route{Method: http.MethodGet, Path: "/rooms/{roomId}/threads", Auth: httpapi.AuthRequired, Handler: a.threads})
}

// relations serves GET /relations/{eventId}[/{relType}[/{eventType}]]:
// the parent's children, newest first (dir=b, the default) or oldest
// first (dir=f), in "s<pos>" stream tokens as /messages.
func (a *API) relations(r *http.Request, c *httpapi.Caller) (any, error) {
	ctx := r.Context()
	q := r.URL.Query()
	roomID := r.PathValue("roomId")
	limit, err := parseLimit(q, defaultRelationsLimit)
	if err != nil {
		return nil, err
	}
	depth := 1
	_, recurseGiven := q["recurse"]
	switch q.Get("recurse") {
	case "true":
		depth = maxRelationDepth
	case "", "false":
	default:
		return nil, mxerr.InvalidParam("recurse must be true or false")
	}
	current := a.rooms.Stream().Current()
	pg, err := parsePage(q, true, current)
	if err != nil {
		return nil, err
	}
	backwards, from, to := pg.backwards, pg.from, pg.to
	// A parent the user may not see is as missing as an unknown one.
	parent, err := a.rooms.VisibleEvent(ctx, roomID, r.PathValue("eventId"), c.UserID)
	if err != nil {
		return nil, err
	}
	rq := relations.Query{RoomID: roomID, Parent: parent.EventID(), RelType: r.PathValue("relType"),
		EventType: r.PathValue("eventType"), Depth: depth}
	evs, next, err := a.rels.Children(ctx, c.UserID, rq, from, to, current, limit, backwards)
	if err != nil {
		return nil, err
	}
	chunk, err := a.render.Render(ctx, evs, a.viewer(c), c.UserID, false)
	if err != nil {
		return nil, err
	}
	resp := map[string]any{"chunk": chunk}
	if next != relations.NoBound {
		resp["next_batch"] = clientsync.Token{Events: next}.String()
	}
	if f := q.Get("from"); f != "" {
		resp["prev_batch"] = f
	}
	if recurseGiven {
		resp["recursion_depth"] = depth
	}
	return resp, nil
}

// threads serves GET /threads: the room's thread roots, the most
// recently active thread first. Tokens are stream positions: a page
// holds the threads whose latest event is at or before the token.
func (a *API) threads(r *http.Request, c *httpapi.Caller) (any, error) {
	ctx := r.Context()
	q := r.URL.Query()
	roomID := r.PathValue("roomId")
	participant := ""
	switch q.Get("include") {
	case "", "all":
	case "participated":
		participant = c.UserID
	default:
		return nil, mxerr.InvalidParam("include must be all or participated")
	}
	limit, err := parseLimit(q, defaultRelationsLimit)
	if err != nil {
		return nil, err
	}
	if limit == 0 {
		return nil, mxerr.InvalidParam("limit must be greater than zero")
	}
	ra, err := a.rooms.ReadAccess(ctx, roomID, c.UserID)
	if err != nil {
		return nil, err
	}
	upper := ra.UpTo(a.rooms.Stream().Current())
	before := upper
	if f := q.Get("from"); f != "" {
		tok, err := clientsync.ParseToken(f)
		if err != nil {
			return nil, err
		}
		before = min(tok.Events, upper)
	}
	roots, next, err := a.rels.Threads(ctx, c.UserID, roomID, participant, upper, before, limit)
	if err != nil {
		return nil, err
	}
	chunk, err := a.render.Render(ctx, roots, a.viewer(c), c.UserID, false)
	if err != nil {
		return nil, err
	}
	resp := map[string]any{"chunk": chunk}
	if next >= 0 {
		resp["next_batch"] = clientsync.Token{Events: next}.String()
	}
	return resp, nil
}
