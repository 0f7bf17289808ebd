package clientapi

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/push"
	"github.com/myelin-chat/myelin/internal/rooms"
)

func (a *API) registerPush(rt *httpapi.Router) {
	const rule = "/pushrules/global/{kind}/{ruleId}"
	for _, r := range []httpapi.Route{
		{Method: http.MethodGet, Path: "/pushrules/{$}", Handler: a.getAllPushRules},
		{Method: http.MethodGet, Path: "/pushrules/global/{$}", Handler: a.getGlobalPushRules},
		{Method: http.MethodGet, Path: rule, Handler: a.getPushRule},
		{Method: http.MethodPut, Path: rule, Handler: a.putPushRule},
		{Method: http.MethodDelete, Path: rule, Handler: a.deletePushRule},
		{Method: http.MethodGet, Path: rule + "/enabled", Handler: a.getPushRuleEnabled},
		{Method: http.MethodPut, Path: rule + "/enabled", Handler: a.putPushRuleEnabled},
		{Method: http.MethodGet, Path: rule + "/actions", Handler: a.getPushRuleActions},
		{Method: http.MethodPut, Path: rule + "/actions", Handler: a.putPushRuleActions},
		{Method: http.MethodGet, Path: "/pushers", Handler: a.getPushers},
		{Method: http.MethodPost, Path: "/pushers/set", Handler: a.setPusher},
		{Method: http.MethodGet, Path: "/notifications", Handler: a.notifications},
	} {
		r.Auth = httpapi.AuthRequired
		legacy(rt, r)
	}
}

func (a *API) getAllPushRules(r *http.Request, c *httpapi.Caller) (any, error) {
	rs, err := a.push.Rules(r.Context(), c.UserID)
	if err != nil {
		return nil, err
	}
	return map[string]any{"global": rs}, nil
}

func (a *API) getGlobalPushRules(r *http.Request, c *httpapi.Caller) (any, error) {
	return a.push.Rules(r.Context(), c.UserID)
}

func (a *API) getPushRule(r *http.Request, c *httpapi.Caller) (any, error) {
	return a.push.Rule(r.Context(), c.UserID, r.PathValue("kind"), r.PathValue("ruleId"))
}

func (a *API) putPushRule(r *http.Request, c *httpapi.Caller) (any, error) {
	var body push.RuleBody
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return nil, err
	}
	q := r.URL.Query()
	return empty, a.push.PutRule(r.Context(), c.UserID, r.PathValue("kind"), r.PathValue("ruleId"), q.Get("before"), q.Get("after"), body)
}

func (a *API) deletePushRule(r *http.Request, c *httpapi.Caller) (any, error) {
	return empty, a.push.DeleteRule(r.Context(), c.UserID, r.PathValue("kind"), r.PathValue("ruleId"))
}

func (a *API) getPushRuleEnabled(r *http.Request, c *httpapi.Caller) (any, error) {
	rule, err := a.push.Rule(r.Context(), c.UserID, r.PathValue("kind"), r.PathValue("ruleId"))
	if err != nil {
		return nil, err
	}
	return map[string]any{"enabled": rule.Enabled}, nil
}

func (a *API) putPushRuleEnabled(r *http.Request, c *httpapi.Caller) (any, error) {
	var body struct {
		Enabled *bool `json:"enabled"`
	}
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return nil, err
	}
	if body.Enabled == nil {
		return nil, mxerr.MissingParam("Missing 'enabled'")
	}
	return empty, a.push.SetEnabled(r.Context(), c.UserID, r.PathValue("kind"), r.PathValue("ruleId"), *body.Enabled)
}

func (a *API) getPushRuleActions(r *http.Request, c *httpapi.Caller) (any, error) {
	rule, err := a.push.Rule(r.Context(), c.UserID, r.PathValue("kind"), r.PathValue("ruleId"))
	if err != nil {
		return nil, err
	}
	return map[string]any{"actions": rule.Actions}, nil
}

func (a *API) putPushRuleActions(r *http.Request, c *httpapi.Caller) (any, error) {
	var body struct {
		Actions json.RawMessage `json:"actions"`
	}
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return nil, err
	}
	return empty, a.push.SetActions(r.Context(), c.UserID, r.PathValue("kind"), r.PathValue("ruleId"), body.Actions)
}

func (a *API) getPushers(r *http.Request, c *httpapi.Caller) (any, error) {
	ps, err := a.push.Pushers(r.Context(), c.Localpart)
	if err != nil {
		return nil, err
	}
	return map[string]any{"pushers": ps}, nil
}

func (a *API) setPusher(r *http.Request, c *httpapi.Caller) (any, error) {
	var body push.PusherBody
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return nil, err
	}
	return empty, a.push.SetPusher(r.Context(), c.Localpart, c.DeviceID, body)
}

// notifications serves GET /notifications: the newest first, paged by
// an opaque token (the last notification's ID), 50 a page by default as
// in Synapse.
func (a *API) notifications(r *http.Request, c *httpapi.Caller) (any, error) {
	q := r.URL.Query()
	var from int64
	if s := q.Get("from"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			return nil, mxerr.InvalidParam("Invalid 'from' token")
		}
		from = n
	}
	limit := 50
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return nil, mxerr.InvalidParam("Invalid 'limit'")
		}
		limit = min(n, 1000)
	}
	ns, err := a.push.Notifications(r.Context(), c.UserID, from, limit, q.Get("only") == "highlight")
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, 0, len(ns))
	for _, n := range ns {
		ev, err := a.rooms.Event(r.Context(), n.EventID)
		if err != nil {
			continue // an event purged since it notified
		}
		if a.rooms.HiddenByReputation(r.Context(), ev) {
			continue // its sender listed since it notified
		}
		if !rooms.ShowFiltered(r.Context()) && a.rooms.FilteredFor(r.Context(), c.UserID, ev) != nil {
			continue // the user's own filter lists its sender
		}
		rendered, err := a.render.Render(r.Context(), []*rooms.Event{ev}, a.viewer(c), c.UserID, false)
		if err != nil {
			return nil, err
		}
		out = append(out, map[string]any{"actions": n.Actions, "event": rendered[0], "read": n.Read, "room_id": n.RoomID, "ts": n.TS})
	}
	resp := map[string]any{"notifications": out}
	if len(ns) == limit && limit > 0 {
		resp["next_token"] = strconv.FormatInt(ns[len(ns)-1].ID, 10)
	}
	return resp, nil
}
