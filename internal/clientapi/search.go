package clientapi

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/clientevent"
	"github.com/myelin-chat/myelin/internal/clientsync"
	"github.com/myelin-chat/myelin/internal/filter"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
	"github.com/myelin-chat/myelin/internal/search"
)

// Server-side search (spec "Server Side Search"): POST /search with the
// room_events category. Guests may not search (not in the spec's list).

func (a *API) registerSearch(rt *httpapi.Router) {
	if a.search == nil {
		return
	}
	legacy(rt, httpapi.Route{Method: http.MethodPost, Path: "/search", Auth: httpapi.AuthRequired, Handler: a.searchHandler})
}

type searchRequest struct {
	SearchCategories *struct {
		RoomEvents *roomEventsCriteria `json:"room_events"`
	} `json:"search_categories"`
}

type roomEventsCriteria struct {
	SearchTerm   *string         `json:"search_term"`
	Keys         []string        `json:"keys"`
	Filter       json.RawMessage `json:"filter"`
	OrderBy      string          `json:"order_by"`
	EventContext *struct {
		BeforeLimit    *int `json:"before_limit"`
		AfterLimit     *int `json:"after_limit"`
		IncludeProfile bool `json:"include_profile"`
	} `json:"event_context"`
	IncludeState bool `json:"include_state"`
	Groupings    struct {
		GroupBy []struct {
			Key string `json:"key"`
		} `json:"group_by"`
	} `json:"groupings"`
}

func (a *API) searchHandler(r *http.Request, c *httpapi.Caller) (any, error) {
	var req searchRequest
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return nil, err
	}
	if req.SearchCategories == nil {
		return nil, mxerr.MissingParam("Missing search_categories")
	}
	crit := req.SearchCategories.RoomEvents
	if crit == nil {
		// The only category; asking for none finds nothing.
		return map[string]any{"search_categories": map[string]any{}}, nil
	}
	if crit.SearchTerm == nil {
		return nil, mxerr.MissingParam("Missing search_term")
	}
	rf := &filter.RoomEventFilter{}
	if len(crit.Filter) > 0 && string(crit.Filter) != "null" {
		if err := a.filters.CheckSize(len(crit.Filter)); err != nil {
			return nil, err
		}
		var err error
		if rf, err = filter.ParseRoomEventFilter(crit.Filter); err != nil {
			return nil, err
		}
	}
	for _, g := range crit.Groupings.GroupBy {
		if g.Key != "room_id" && g.Key != "sender" {
			return nil, mxerr.InvalidParam("Unknown group_by key %q", g.Key)
		}
	}
	res, err := a.search.Search(r.Context(), c.UserID, search.Request{
		Term: *crit.SearchTerm, Keys: crit.Keys, Filter: rf, OrderBy: crit.OrderBy,
		NextBatch: r.URL.Query().Get("next_batch"),
	})
	if err != nil {
		return nil, err
	}
	out, err := a.searchResults(r.Context(), c, crit, rf, res)
	if err != nil {
		return nil, err
	}
	return map[string]any{"search_categories": map[string]any{"room_events": out}}, nil
}

// searchResults shapes a page of results: each event with its context,
// the groups, and the state of the rooms the results are in.
func (a *API) searchResults(ctx context.Context, c *httpapi.Caller, crit *roomEventsCriteria, rf *filter.RoomEventFilter, res *search.Result) (map[string]any, error) {
	evs := make([]*rooms.Event, len(res.Hits))
	for i, h := range res.Hits {
		evs[i] = h.Event
	}
	rendered, err := a.render.Render(ctx, evs, a.viewer(c), c.UserID, false)
	if err != nil {
		return nil, err
	}
	results := make([]map[string]any, len(res.Hits))
	for i, h := range res.Hits {
		results[i] = map[string]any{"rank": h.Rank, "result": rendered[i]}
		if crit.EventContext != nil {
			ctxOut, err := a.searchContext(ctx, c, h.Event, crit, rf)
			if err != nil {
				return nil, err
			}
			results[i]["context"] = ctxOut
		}
	}
	out := map[string]any{"count": res.Count, "highlights": res.Highlights, "results": results}
	if res.NextBatch != "" {
		out["next_batch"] = res.NextBatch
	}
	if groups := searchGroups(crit, res); len(groups) > 0 {
		out["groups"] = groups
	}
	if crit.IncludeState {
		state, err := a.searchState(ctx, c, res)
		if err != nil {
			return nil, err
		}
		out["state"] = state
	}
	return out, nil
}

// searchGroups groups the results by room and by sender as asked. Each
// group's order is the rank of its best result for rank ordering and the
// timestamp of its newest for recent ordering (as Synapse), and its
// next_batch is the page's.
func searchGroups(crit *roomEventsCriteria, res *search.Result) map[string]any {
	groups := map[string]any{}
	for _, g := range crit.Groupings.GroupBy {
		byKey := map[string]map[string]any{}
		for _, h := range res.Hits {
			k := h.Event.RoomID().String()
			if g.Key == "sender" {
				k = h.Event.Sender()
			}
			grp, ok := byKey[k]
			if !ok {
				order := any(h.Rank)
				if crit.OrderBy == search.OrderRecent {
					order = int64(h.Event.OriginServerTS())
				}
				grp = map[string]any{"results": []string{}, "order": order}
				if res.NextBatch != "" {
					grp["next_batch"] = res.NextBatch
				}
				byKey[k] = grp
			}
			grp["results"] = append(grp["results"].([]string), h.Event.EventID())
		}
		groups[g.Key] = byKey
	}
	return groups
}

// searchContext is a result's event_context: the events around it that
// the user may see, /messages tokens on either side and, if asked, the
// senders' profiles as the room knew them.
func (a *API) searchContext(ctx context.Context, c *httpapi.Caller, ev *rooms.Event, crit *roomEventsCriteria, rf *filter.RoomEventFilter) (map[string]any, error) {
	before, after := 5, 5 // the spec's defaults
	if l := crit.EventContext.BeforeLimit; l != nil {
		before = min(max(*l, 0), 100)
	}
	if l := crit.EventContext.AfterLimit; l != nil {
		after = min(max(*l, 0), 100)
	}
	roomID := ev.RoomID().String()
	ra, err := a.rooms.ReadAccess(ctx, roomID, c.UserID)
	if err != nil {
		return nil, err
	}
	upper := ra.UpTo(a.rooms.Stream().Current())
	cf := *rf
	cf.Limit = nil
	w := &rooms.Window{Event: ev, Start: ev.StreamPos - 1, End: ev.StreamPos}
	if w.Before, _, _, err = a.paginate(ctx, roomID, c.UserID, ev.StreamPos-1, noBound, upper, before, true, &cf); err != nil {
		return nil, err
	}
	if w.After, _, _, err = a.paginate(ctx, roomID, c.UserID, ev.StreamPos, noBound, upper, after, false, &cf); err != nil {
		return nil, err
	}
	last := ev
	if len(w.Before) > 0 {
		w.Start = w.Before[len(w.Before)-1].StreamPos - 1
	}
	if len(w.After) > 0 {
		last = w.After[len(w.After)-1]
		w.End = last.StreamPos
	}
	all := append(append([]*rooms.Event{}, w.Before...), w.After...)
	rendered, err := a.render.Render(ctx, all, a.viewer(c), c.UserID, false)
	if err != nil {
		return nil, err
	}
	out := map[string]any{
		"events_before": nonNil(rendered[:len(w.Before)]),
		"events_after":  nonNil(rendered[len(w.Before):]),
		"start":         clientsync.Token{Events: w.Start}.String(),
		"end":           clientsync.Token{Events: w.End}.String(),
	}
	if crit.EventContext.IncludeProfile {
		if out["profile_info"], err = a.senderProfiles(ctx, last, w.Senders()); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// senderProfiles are the display names and avatars of senders in the
// state after last, from their membership events (as Synapse).
func (a *API) senderProfiles(ctx context.Context, last *rooms.Event, senders map[string]bool) (map[string]any, error) {
	state, err := a.rooms.StateAt(ctx, last.StateAfter)
	if err != nil {
		return nil, err
	}
	keys := make([]roommodel.StateKey, 0, len(senders))
	for s := range senders {
		keys = append(keys, roommodel.StateKey{Type: spec.MRoomMember, StateKey: s})
	}
	members, err := a.rooms.StateEvents(ctx, state, keys...)
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	for k, m := range members {
		var content struct {
			DisplayName *string `json:"displayname,omitempty"`
			AvatarURL   *string `json:"avatar_url,omitempty"`
		}
		_ = json.Unmarshal(m.Content(), &content)
		out[k.StateKey] = content
	}
	return out, nil
}

// searchState is the state of each room with results that the user may
// read (include_state).
func (a *API) searchState(ctx context.Context, c *httpapi.Caller, res *search.Result) (map[string][]clientevent.Event, error) {
	out := map[string][]clientevent.Event{}
	for _, h := range res.Hits {
		roomID := h.Event.RoomID().String()
		if _, done := out[roomID]; done {
			continue
		}
		ra, err := a.rooms.ReadAccess(ctx, roomID, c.UserID)
		if err != nil {
			if _, ok := mxerr.As(err); ok {
				continue
			}
			return nil, err
		}
		state := ra.State
		evs, err := a.stateList(ctx, state, func(roommodel.StateKey) bool { return true })
		if err != nil {
			return nil, err
		}
		if out[roomID], err = a.render.Render(ctx, evs, a.viewer(c), c.UserID, false); err != nil {
			return nil, err
		}
	}
	return out, nil
}
