package admin

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/reputation"
	"github.com/myelin-chat/myelin/internal/store"
)

// Reputation is Myelin's own admin API for reputation feeds (issue 16):
// subscriptions, the decision log and its per-feed counts, and a check
// of the blended verdict. Authenticated as Synapse's admin API is: the
// access token of a server admin.
type Reputation struct {
	svc *reputation.Service
}

// NewReputation makes the reputation admin API over the service.
func NewReputation(svc *reputation.Service) *Reputation { return &Reputation{svc: svc} }

// maxDecisionsPage bounds one page of the decision log.
const maxDecisionsPage = 1000

// Register adds the /_myelin/admin/v1/reputation routes.
func (a *Reputation) Register(rt *httpapi.Router) {
	const p = "/_myelin/admin/v1/reputation"
	for _, r := range []struct {
		method, path string
		h            httpapi.Handler
	}{
		{http.MethodGet, p + "/feeds", a.listFeeds},
		{http.MethodPost, p + "/feeds", a.subscribe},
		{http.MethodDelete, p + "/feeds/{feed}", a.unsubscribe},
		{http.MethodGet, p + "/feeds/{feed}/stats", a.stats},
		{http.MethodGet, p + "/decisions", a.decisions},
		{http.MethodGet, p + "/check", a.check},
	} {
		rt.Add(httpapi.Route{Method: r.method, Path: r.path, Auth: httpapi.AuthRequired, Handler: adminOnly(r.h)})
	}
}

func feedJSON(f reputation.Feed) map[string]any {
	return map[string]any{"feed": f.Feed, "room_id": f.RoomID, "weight": f.Weight, "allow": f.Allow,
		"source": f.Source, "added_ts": f.AddedTS, "last_error": f.LastError, "rules": f.Rules}
}

// listFeeds is GET .../feeds: every subscription, with its room, the
// rules loaded from it and the last error met following it.
func (a *Reputation) listFeeds(r *http.Request, _ *httpapi.Caller) (any, error) {
	feeds, err := a.svc.Feeds(r.Context())
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, 0, len(feeds))
	for _, f := range feeds {
		out = append(out, feedJSON(f))
	}
	return map[string]any{"feeds": out, "total": len(out)}, nil
}

// subscribe is POST .../feeds {room, weight?, allow?, via?}: subscribes
// (or reweighs) and answers the subscription once its room is joined
// and loaded, or with last_error set if that failed (it is retried).
func (a *Reputation) subscribe(r *http.Request, _ *httpapi.Caller) (any, error) {
	var body struct {
		Room   *string  `json:"room"`
		Weight *float64 `json:"weight"`
		Allow  bool     `json:"allow"`
		Via    []string `json:"via"`
	}
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return nil, err
	}
	if body.Room == nil {
		return nil, mxerr.BadJSON("room is required")
	}
	sub := reputation.Subscription{Feed: *body.Room, Weight: 1, Allow: body.Allow, Via: body.Via}
	if body.Weight != nil {
		sub.Weight = *body.Weight
	}
	if len(sub.Via) > 20 {
		return nil, mxerr.InvalidParam("via lists at most 20 servers")
	}
	for _, srv := range sub.Via {
		if config.ValidateServerName(srv) != nil {
			return nil, mxerr.InvalidParam("via: %q is not a server name", srv)
		}
	}
	f, err := a.svc.Subscribe(r.Context(), sub)
	if err != nil {
		return nil, err
	}
	return feedJSON(f), nil
}

// unsubscribe is DELETE .../feeds/{feed} (its name or room ID).
func (a *Reputation) unsubscribe(r *http.Request, _ *httpapi.Caller) (any, error) {
	if err := a.svc.Unsubscribe(r.Context(), r.PathValue("feed")); err != nil {
		return nil, err
	}
	return map[string]any{}, nil
}

func sinceTS(r *http.Request) (int64, error) {
	v := r.URL.Query().Get("since_ts")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, mxerr.InvalidParam("Query parameter since_ts must be a non-negative integer")
	}
	return n, nil
}

// stats is GET .../feeds/{feed}/stats?since_ts=: how many decisions of
// each action the feed took part in since then.
func (a *Reputation) stats(r *http.Request, _ *httpapi.Caller) (any, error) {
	since, err := sinceTS(r)
	if err != nil {
		return nil, err
	}
	roomID, counts, err := a.svc.FeedStats(r.Context(), r.PathValue("feed"), since)
	if err != nil {
		return nil, err
	}
	var total int64
	for _, n := range counts {
		total += n
	}
	return map[string]any{"feed": roomID, "since_ts": since, "counts": counts, "total": total}, nil
}

// decisions is GET .../decisions: the log, newest first, from an offset
// (from, next_token), limit (100 by default), filtered by action, kind,
// feed and since_ts; dropped_since_start counts decisions the log could
// not keep up with since the server started.
func (a *Reputation) decisions(r *http.Request, _ *httpapi.Caller) (any, error) {
	q := r.URL.Query()
	query := store.ReputationDecisionQuery{Action: q.Get("action"), Kind: q.Get("kind"), Feed: q.Get("feed")}
	var err error
	if query.From, err = nonNegative(q.Get("from"), 0, "from"); err != nil {
		return nil, err
	}
	if query.Limit, err = nonNegative(q.Get("limit"), 100, "limit"); err != nil {
		return nil, err
	}
	query.Limit = min(query.Limit, maxDecisionsPage)
	if query.SinceTS, err = sinceTS(r); err != nil {
		return nil, err
	}
	if query.Action != "" && !slices.Contains(reputation.Actions, reputation.Action(query.Action)) {
		return nil, mxerr.InvalidParam("Unknown action: %s", query.Action)
	}
	if query.Kind != "" && !slices.Contains(reputation.Kinds, reputation.Kind(query.Kind)) {
		return nil, mxerr.InvalidParam("Unknown kind: %s", query.Kind)
	}
	list, total, err := a.svc.Decisions(r.Context(), query)
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, 0, len(list))
	for _, d := range list {
		out = append(out, map[string]any{"id": d.ID, "ts": d.TS, "action": d.Action, "kind": d.Kind, "entity": d.Entity,
			"feeds": d.Feeds, "score": d.Score, "detail": d.Detail})
	}
	resp := map[string]any{"decisions": out, "total": total, "dropped_since_start": a.svc.DecisionsDropped()}
	if int64(query.From+len(list)) < total {
		resp["next_token"] = query.From + len(list)
	}
	return resp, nil
}

// check is GET .../check?kind=&entity=&action=: the blended verdict,
// for admins who want to know why something is (not) enforced. Nothing
// is logged. action defaults to events.
func (a *Reputation) check(r *http.Request, _ *httpapi.Caller) (any, error) {
	q := r.URL.Query()
	kind, entity, action := reputation.Kind(q.Get("kind")), q.Get("entity"), reputation.Action(q.Get("action"))
	if action == "" {
		action = reputation.ActionEvents
	}
	if !slices.Contains(reputation.Kinds, kind) {
		return nil, mxerr.InvalidParam("kind must be user, room or server")
	}
	if !slices.Contains(reputation.Actions, action) {
		return nil, mxerr.InvalidParam("Unknown action: %s", action)
	}
	if entity == "" || len(entity) > 1024 {
		return nil, mxerr.InvalidParam("entity is required (at most 1024 bytes)")
	}
	v := a.svc.Check(r.Context(), action, kind, entity)
	feeds := v.Feeds
	if feeds == nil {
		feeds = []string{}
	}
	return map[string]any{"listed": v.Listed, "score": json.Number(strconv.FormatFloat(v.Score, 'f', -1, 64)),
		"takedown": v.Takedown, "reason": v.Reason, "feeds": feeds, "action": action, "kind": kind, "entity": entity}, nil
}
