package clientapi

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/clientevent"
	"github.com/myelin-chat/myelin/internal/filter"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
	mxsync "github.com/myelin-chat/myelin/internal/sync"
)

// maxPageLimit caps /messages and /context pages.
const maxPageLimit = 1000

func (a *API) registerMessages(rt *httpapi.Router) {
	legacy(rt, httpapi.Route{Method: http.MethodGet, Path: "/rooms/{roomId}/messages", Auth: httpapi.AuthRequired, AllowGuest: true, Handler: a.messages})
}

// page is a pagination request: a direction and the from and to tokens
// as stream positions (to is -1 when absent).
type page struct {
	backwards bool
	from, to  int64
}

// parsePage reads dir, from and to. Without from, a backwards page starts
// at the current position and a forwards one at the start of the room.
// dir is required on /messages and defaults to b elsewhere.
func parsePage(q url.Values, dirOptional bool, current int64) (page, error) {
	p := page{backwards: true, to: -1}
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
		tok, err := mxsync.ParseToken(f)
		if err != nil {
			return p, err
		}
		p.from = min(tok.Events, current)
	}
	if t := q.Get("to"); t != "" {
		tok, err := mxsync.ParseToken(t)
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
		var err error
		if rf, err = filter.ParseRoomEventFilter([]byte(f)); err != nil {
			return nil, err
		}
		if rf.Limit > 0 && q.Get("limit") == "" {
			limit = min(rf.Limit, maxPageLimit)
		}
	}
	// Members may read history; others only world-readable rooms, and a
	// user who left only up to their leave.
	upper, err := a.readableUpTo(r.Context(), roomID, c.UserID, current)
	if err != nil {
		return nil, err
	}
	evs, next, err := a.paginate(r.Context(), roomID, c.UserID, from, to, upper, limit, backwards, rf)
	if err != nil {
		return nil, err
	}
	chunk, err := a.render.Render(r.Context(), evs, a.viewer(c), c.UserID, false)
	if err != nil {
		return nil, err
	}
	resp := map[string]any{"chunk": chunk, "start": mxsync.Token{Events: from}.String()}
	if next >= 0 {
		resp["end"] = mxsync.Token{Events: next}.String()
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

// readableUpTo is the last stream position of the room the user may page
// to: everything while joined or in a world-readable room, up to their
// leave after leaving.
func (a *API) readableUpTo(ctx context.Context, roomID, userID string, current int64) (int64, error) {
	state, err := a.rooms.CurrentState(ctx, roomID)
	if err != nil {
		if _, ok := mxerr.As(err); ok {
			return 0, mxerr.Forbidden("You are not in this room")
		}
		return 0, err
	}
	m, err := a.rooms.MembershipIn(ctx, state, userID)
	if err != nil {
		return 0, err
	}
	switch m {
	case spec.Join:
		return current, nil
	case spec.Leave, spec.Ban:
		ev, err := a.rooms.StateEvent(ctx, state, spec.MRoomMember, userID)
		if err != nil {
			return 0, err
		}
		return ev.StreamPos, nil
	}
	if ok, err := a.rooms.CanPeek(ctx, state); err != nil || ok {
		return current, err
	}
	return 0, mxerr.Forbidden("You are not in this room")
}

// paginate walks the room's events from a token in one direction,
// keeping those that pass the filter and history visibility, until it has
// limit events or reaches the to token or the end. It returns the token
// to continue from, -1 when there is nothing further.
func (a *API) paginate(ctx context.Context, roomID, userID string, from, to, upper int64, limit int, backwards bool, rf *filter.RoomEventFilter) ([]*rooms.Event, int64, error) {
	vis := a.rooms.VisibilityFor(userID)
	var out []*rooms.Event
	cursor := from
	for len(out) < limit {
		var nids []int64
		var err error
		batch := max(limit-len(out), 20)
		if backwards {
			lower := max(to, 0)
			nids, err = a.roomStore.RoomEvents(ctx, roomID, lower, min(cursor, upper), batch, true)
		} else {
			hi := upper
			if to >= 0 {
				hi = min(hi, to)
			}
			nids, err = a.roomStore.RoomEvents(ctx, roomID, cursor, hi, batch, false)
		}
		if err != nil {
			return nil, 0, err
		}
		if len(nids) == 0 {
			return out, -1, nil
		}
		evs, err := a.rooms.EventsByNID(ctx, nids)
		if err != nil {
			return nil, 0, err
		}
		for _, ev := range evs {
			if backwards {
				cursor = ev.StreamPos - 1
			} else {
				cursor = ev.StreamPos
			}
			if !rf.Allows(ev.Type(), ev.Sender(), roomID, ev.HasURL) {
				continue
			}
			ok, err := vis.CanSee(ctx, ev)
			if err != nil {
				return nil, 0, err
			}
			if ok {
				out = append(out, ev)
				if len(out) == limit {
					break
				}
			}
		}
		if len(nids) < batch {
			if len(out) < limit {
				return out, -1, nil
			}
			break
		}
	}
	return out, cursor, nil
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
	var keys []store.StateKey
	for _, ev := range evs {
		if !seen[ev.Sender()] {
			seen[ev.Sender()] = true
			keys = append(keys, store.StateKey{Type: spec.MRoomMember, StateKey: ev.Sender()})
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
	return a.render.Render(ctx, members, a.viewer(c), c.UserID, false)
}
