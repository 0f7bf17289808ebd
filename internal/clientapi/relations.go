package clientapi

import (
	"context"
	"net/http"

	"github.com/myelin-chat/myelin/internal/clientsync"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/relations"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
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
	parent, err := a.visibleEvent(ctx, roomID, r.PathValue("eventId"), c.UserID)
	if err != nil {
		return nil, err
	}
	rq := store.RelationQuery{RoomID: roomID, Parent: parent.EventID(), RelType: r.PathValue("relType"),
		EventType: r.PathValue("eventType"), Depth: depth}
	evs, next, err := a.pageRelations(ctx, c.UserID, rq, from, to, current, limit, backwards)
	if err != nil {
		return nil, err
	}
	chunk, err := a.render.Render(ctx, evs, a.viewer(c), c.UserID, false)
	if err != nil {
		return nil, err
	}
	resp := map[string]any{"chunk": chunk}
	if next != noBound {
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

// pageRelations walks a parent's children from a token in one direction,
// keeping those the user may see, until it has limit events or reaches
// the to token or the end. It returns the token to continue from,
// noBound when there is nothing further.
func (a *API) pageRelations(ctx context.Context, userID string, rq store.RelationQuery, from, to, upper int64, limit int, backwards bool) ([]*rooms.Event, int64, error) {
	vis := a.rooms.VisibilityFor(userID)
	var out []*rooms.Event
	cursor := from
	if limit == 0 {
		return nil, noBound, nil
	}
	for {
		batch := max(limit-len(out), 20)
		q := rq
		q.Limit, q.Backwards = batch, backwards
		if backwards {
			q.After, q.Upto = to, min(cursor, upper)
		} else {
			q.After, q.Upto = cursor, upper
			if to != noBound {
				q.Upto = min(upper, to)
			}
		}
		if q.Upto <= q.After {
			return out, noBound, nil
		}
		rows, err := a.roomStore.RelatedEvents(ctx, q)
		if err != nil {
			return nil, 0, err
		}
		evs, err := rooms.EventsFor(ctx, a.rooms, rows, func(row store.EventRow) int64 { return row.NID })
		if err != nil {
			return nil, 0, err
		}
		for i, ev := range evs {
			if backwards {
				cursor = ev.StreamPos - 1
			} else {
				cursor = ev.StreamPos
			}
			ok, err := vis.CanSee(ctx, ev)
			if err != nil {
				return nil, 0, err
			}
			if ok {
				out = append(out, ev)
			}
			if len(out) == limit {
				if len(rows) < batch && i == len(evs)-1 {
					return out, noBound, nil
				}
				return out, cursor, nil
			}
		}
		if len(rows) < batch {
			return out, noBound, nil
		}
	}
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
	upper, err := a.readableUpTo(ctx, roomID, c.UserID, a.rooms.Stream().Current())
	if err != nil {
		return nil, err
	}
	before := upper
	if f := q.Get("from"); f != "" {
		tok, err := clientsync.ParseToken(f)
		if err != nil {
			return nil, err
		}
		before = min(tok.Events, upper)
	}
	roots, next, err := a.pageThreads(ctx, c.UserID, roomID, participant, upper, before, limit)
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

// pageThreads walks a room's threads back from before, most recently
// active first, keeping the roots the user may see (of threads they took
// part in, when participant is set), until it has limit of them or
// reaches the start. It returns the token to continue from, -1 when
// there is nothing further.
func (a *API) pageThreads(ctx context.Context, userID, roomID, participant string, upper, before int64, limit int) ([]*rooms.Event, int64, error) {
	vis := a.rooms.VisibilityFor(userID)
	var roots []*rooms.Event
	for before > 0 {
		batch := max(limit-len(roots), 20)
		threads, err := a.roomStore.ThreadRoots(ctx, roomID, upper, before, participant, batch)
		if err != nil {
			return nil, 0, err
		}
		byID, err := a.threadRootEvents(ctx, threads)
		if err != nil {
			return nil, 0, err
		}
		for i, t := range threads {
			before = t.LatestPos - 1
			ev := byID[t.RootID]
			if !canRootThread(ev, roomID) {
				continue
			}
			ok, err := vis.CanSee(ctx, ev)
			if err != nil {
				return nil, 0, err
			}
			if ok {
				roots = append(roots, ev)
			}
			if len(roots) == limit {
				if len(threads) == batch || i < len(threads)-1 {
					return roots, before, nil
				}
				return roots, -1, nil
			}
		}
		if len(threads) < batch {
			break
		}
	}
	return roots, -1, nil
}

// threadRootEvents loads the root events of threads, by event ID.
func (a *API) threadRootEvents(ctx context.Context, threads []store.ThreadRoot) (map[string]*rooms.Event, error) {
	ids := make([]string, len(threads))
	for i, t := range threads {
		ids[i] = t.RootID
	}
	evs, err := a.rooms.EventsByID(ctx, ids)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]*rooms.Event, len(evs))
	for _, ev := range evs {
		byID[ev.EventID()] = ev
	}
	return byID, nil
}

// canRootThread reports whether ev may root a thread of roomID: a
// thread event may name any event ID as its root, but only an accepted
// message event of the room that is no relation itself roots a thread.
func canRootThread(ev *rooms.Event, roomID string) bool {
	if ev == nil || ev.RoomID().String() != roomID || ev.Status != store.EventAccepted || ev.IsState() {
		return false
	}
	rel, _ := relations.Of(ev)
	return rel == ""
}
