package clientapi

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/clientevent"
	"github.com/myelin-chat/myelin/internal/clientsync"
	"github.com/myelin-chat/myelin/internal/filter"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
)

// maxPageLimit caps /messages and /context pages.
const maxPageLimit = 1000

// maxBackfillRounds bounds the /backfill requests one /messages page
// makes: enough for a full page of maxPageLimit from servers that answer
// 100 events at a time, few enough that a page whose events are all
// filtered out does not walk the whole room.
const maxBackfillRounds = 12

func (a *API) registerMessages(rt *httpapi.Router) {
	legacy(rt, httpapi.Route{Method: http.MethodGet, Path: "/rooms/{roomId}/messages", Auth: httpapi.AuthRequired, AllowGuest: true, Handler: a.messages})
}

// page is a pagination request: a direction and the from and to tokens
// as stream positions (to is noBound when absent).
type page struct {
	backwards bool
	from, to  int64
}

// noBound is a page with no end: stream positions go below zero for
// events backfilled from other servers, so -1 cannot mean "none".
const noBound = rooms.NoBound

// parsePage reads dir, from and to. Without from, a backwards page starts
// at the current position and a forwards one at the start of the room.
// dir is required on /messages and defaults to b elsewhere.
func parsePage(q url.Values, dirOptional bool, current int64) (page, error) {
	p := page{backwards: true, to: noBound, from: noBound}
	switch q.Get("dir") {
	case "b":
	case "f":
		p.backwards = false
	case "":
		if !dirOptional {
			return p, mxerr.InvalidParam("dir must be b or f")
		}
	default:
		return p, mxerr.InvalidParam("dir must be b or f")
	}
	if p.backwards {
		p.from = current
	}
	if f := q.Get("from"); f != "" {
		tok, err := clientsync.ParsePageToken(f)
		if err != nil {
			return p, err
		}
		p.from = min(tok.Events, current)
	}
	if t := q.Get("to"); t != "" {
		tok, err := clientsync.ParsePageToken(t)
		if err != nil {
			return p, err
		}
		p.to = tok.Events
	}
	return p, nil
}

// parseLimit reads the limit parameter, capped at maxPageLimit.
func parseLimit(q url.Values, def int) (int, error) {
	l := q.Get("limit")
	if l == "" {
		return def, nil
	}
	n, err := strconv.Atoi(l)
	if err != nil || n < 0 {
		return 0, mxerr.InvalidParam("limit must be a non-negative integer")
	}
	return min(n, maxPageLimit), nil
}

// Pagination tokens are event stream positions ("s<pos>"): a token sits
// after the event at its position. Backwards from t returns events at or
// before t, forwards returns events after t.
func (a *API) messages(r *http.Request, c *httpapi.Caller) (any, error) {
	q := r.URL.Query()
	roomID := r.PathValue("roomId")
	current := a.rooms.Stream().Current()
	// Members may read history; others only world-readable rooms, and a
	// user who left only up to their leave (nothing once they forgot the
	// room). Access comes before the parameters, as in Synapse: a user
	// who may not read the room learns nothing from a 400.
	ra, err := a.rooms.ReadAccess(r.Context(), roomID, c.UserID)
	if err != nil {
		return nil, err
	}
	pg, err := parsePage(q, false, current)
	if err != nil {
		return nil, err
	}
	backwards, from, to := pg.backwards, pg.from, pg.to
	limit, err := parseLimit(q, 10)
	if err != nil {
		return nil, err
	}
	rf := &filter.RoomEventFilter{}
	if f := q.Get("filter"); f != "" {
		if err := a.filters.CheckSize(len(f)); err != nil {
			return nil, err
		}
		var err error
		if rf, err = filter.ParseRoomEventFilter([]byte(f)); err != nil {
			return nil, err
		}
		if rf.Limit != nil && *rf.Limit > 0 && q.Get("limit") == "" {
			limit = min(*rf.Limit, maxPageLimit)
		}
	}
	upper := ra.UpTo(current)
	evs, next, more, err := a.paginate(r.Context(), roomID, c.UserID, from, to, upper, limit, backwards, rf)
	if err != nil {
		return nil, err
	}
	if backwards && a.federation != nil {
		if evs, next, more, err = a.fillHoles(r.Context(), roomID, c.UserID, evs, from, to, next, more, upper, limit, rf); err != nil {
			return nil, err
		}
	}
	if backwards && !more && len(evs) < limit && a.federation != nil && to == noBound {
		if evs, next, more, err = a.backfillPage(r.Context(), roomID, c.UserID, evs, from, next, upper, limit, rf); err != nil {
			return nil, err
		}
	}
	chunk, err := a.render.Render(r.Context(), evs, a.viewer(c), c.UserID, false)
	if err != nil {
		return nil, err
	}
	resp := map[string]any{"chunk": chunk, "start": clientsync.Token{Events: from}.String()}
	switch {
	case more:
		resp["end"] = clientsync.Token{Events: next}.String()
	case len(evs) > 0 && q.Get("filter") != "":
		// A filtered page (contains_url, say) with events has an end,
		// right after its last event, as Synapse answers every page
		// with events; the page after it is empty and has none. Clients
		// and the conformance suite page a filtered view until then.
		// Unfiltered pages keep the spec's rule: no end once the room's
		// start (or the newest event) is reached.
		last := evs[len(evs)-1].StreamPos
		if backwards {
			last--
		}
		resp["end"] = clientsync.Token{Events: last}.String()
	}
	if rf.LazyLoadMembers {
		state, err := a.lazyMembers(r.Context(), evs, c)
		if err != nil {
			return nil, err
		}
		resp["state"] = state
	}
	return resp, nil
}

// backfillPage completes a backwards page that reached the end of the
// room's history here with history from other servers. One /backfill
// answer may hold fewer events than the page lacks (servers cap it, the
// filter and history visibility drop some), so backfill goes on until the
// page is full or the room's start is reached.
func (a *API) backfillPage(ctx context.Context, roomID, userID string, evs []*rooms.Event, from, next, upper int64, limit int, rf *filter.RoomEventFilter) ([]*rooms.Event, int64, bool, error) {
	more := false
	for round := 0; !more && len(evs) < limit && round < maxBackfillRounds; round++ {
		n, err := a.federation.Backfill(ctx, roomID, max(limit-len(evs), 20))
		if err != nil {
			return nil, 0, false, err
		}
		if n == 0 {
			break
		}
		cursor := from
		if len(evs) > 0 {
			cursor = evs[len(evs)-1].StreamPos - 1
		}
		older, n2, more2, err := a.paginate(ctx, roomID, userID, cursor, noBound, upper, limit-len(evs), true, rf)
		if err != nil {
			return nil, 0, false, err
		}
		evs, next, more = append(evs, older...), n2, more2
	}
	return evs, next, more, nil
}

// fillHoles backfills the holes in the middle of history that a
// backwards page crossed (events whose prev events this server never
// got, see rooms.HistoryGap) and pages again, so that the hole's events
// are in the page in their place: what Synapse does at every backward
// extremity a page reaches, not only at the room's start.
func (a *API) fillHoles(ctx context.Context, roomID, userID string, evs []*rooms.Event, from, to, next int64, more bool, upper int64, limit int, rf *filter.RoomEventFilter) ([]*rooms.Event, int64, bool, error) {
	for round := 0; round < maxBackfillRounds; round++ {
		lo := to
		if more {
			lo = next + 1
		}
		n, err := a.federation.FillGaps(ctx, roomID, lo, min(from, upper), limit)
		if err != nil {
			return nil, 0, false, err
		}
		if n == 0 {
			break
		}
		if evs, next, more, err = a.paginate(ctx, roomID, userID, from, to, upper, limit, true, rf); err != nil {
			return nil, 0, false, err
		}
	}
	return evs, next, more, nil
}

// paginate walks the room's events from a token in one direction,
// keeping those that pass the filter and history visibility (see
// rooms.Engine.Timeline).
func (a *API) paginate(ctx context.Context, roomID, userID string, from, to, upper int64, limit int, backwards bool, rf *filter.RoomEventFilter) ([]*rooms.Event, int64, bool, error) {
	return a.rooms.Timeline(ctx, roomID, userID, from, to, upper, limit, backwards, func(ev *rooms.Event) bool {
		return rf.Allows(ev.Type(), ev.Sender(), roomID, ev.HasURL)
	})
}

// lazyMembers returns the membership events of the senders of evs, at
// the room's current state, for lazy-loading clients.
func (a *API) lazyMembers(ctx context.Context, evs []*rooms.Event, c *httpapi.Caller) ([]clientevent.Event, error) {
	if len(evs) == 0 {
		return []clientevent.Event{}, nil
	}
	state, err := a.rooms.StateAt(ctx, evs[0].StateBefore)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var keys []roommodel.StateKey
	for _, ev := range evs {
		if !seen[ev.Sender()] {
			seen[ev.Sender()] = true
			keys = append(keys, roommodel.StateKey{Type: spec.MRoomMember, StateKey: ev.Sender()})
		}
	}
	m, err := a.rooms.StateEvents(ctx, state, keys...)
	if err != nil {
		return nil, err
	}
	var members []*rooms.Event
	for _, k := range keys {
		if ev, ok := m[k]; ok {
			members = append(members, ev)
		}
	}
	return a.render.RenderState(ctx, members, a.viewer(c), c.UserID, false)
}
