package clientapi

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/myelin-chat/myelin/internal/delayed"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// LimitDelayedMgmt is the bucket of delayed event management (Synapse's
// rc_delayed_event_mgmt).
const LimitDelayedMgmt = "delayed_event_mgmt"

// delayParams are the query parameters that ask /send and /state for a
// delayed event: Synapse's (and Element Call's) unstable name, and the
// MSC's stable one.
var delayParams = []string{"org.matrix.msc4140.delay", "delay"}

// ParseDelay reads the delay of a delayed event (MSC4140) from a query:
// ok false when none is asked for; a delay that is not a non-negative
// integer of milliseconds is M_INVALID_PARAM.
func ParseDelay(q map[string][]string) (d time.Duration, ok bool, err error) {
	for _, p := range delayParams {
		vs, present := q[p]
		if !present || len(vs) == 0 {
			continue
		}
		ms, perr := strconv.ParseInt(vs[0], 10, 64)
		if perr != nil || ms < 0 || ms > int64(time.Duration(1<<62)/time.Millisecond) {
			return 0, false, mxerr.InvalidParam("%s must be a non-negative integer of milliseconds", p)
		}
		return time.Duration(ms) * time.Millisecond, true, nil
	}
	return 0, false, nil
}

// delayOf is the delay asked of a /send or /state request; ok is false
// when none is asked or delayed events are off (the parameter is then
// ignored and the event sent now, as Synapse without
// max_event_delay_duration does).
func (a *API) delayOf(r *http.Request) (time.Duration, bool, error) {
	if a.delayed == nil || !a.delayed.Enabled() {
		return 0, false, nil
	}
	return ParseDelay(r.URL.Query())
}

// sendDelayed schedules a /send or /state request's event.
func (a *API) sendDelayed(r *http.Request, c *httpapi.Caller, roomID, typ string, stateKey *string, content json.RawMessage, d time.Duration) (any, error) {
	txnID := ""
	if stateKey == nil {
		txnID = r.PathValue("txnId")
	}
	if c.Suspended {
		return nil, mxerr.UserSuspended()
	}
	if err := a.delayed.CheckDelay(d); err != nil {
		return nil, err
	}
	if c.ShadowBanned {
		// As Synapse: the shadow-banned see their request succeed.
		return map[string]string{"delay_id": "syd_" + shadowBannedID()[:20]}, nil
	}
	id, err := a.delayed.Add(r.Context(), delayed.AddRequest{UserID: c.UserID, DeviceID: c.DeviceID, RoomID: roomID, Type: typ,
		StateKey: stateKey, Content: content, Delay: d, TxnID: txnID})
	if err != nil {
		return nil, err
	}
	return map[string]string{"delay_id": id}, nil
}

func (a *API) registerDelayed(rt *httpapi.Router) {
	if a.delayed == nil || !a.delayed.Enabled() {
		return
	}
	const base = "/_matrix/client/unstable/org.matrix.msc4140/delayed_events"
	rt.Add(httpapi.Route{Method: http.MethodGet, Path: base, Auth: httpapi.AuthRequired, AllowGuest: true, RateLimit: LimitDelayedMgmt, Handler: a.listDelayed})
	rt.Add(httpapi.Route{Method: http.MethodPost, Path: base + "/{delayId}", Auth: httpapi.AuthRequired, AllowGuest: true, RateLimit: LimitDelayedMgmt, Handler: a.updateDelayed})
}

// DelayedAction is the body of POST .../delayed_events/{delay_id}.
type DelayedAction struct {
	Action *string `json:"action"`
}

// ParseDelayedAction reads and checks an update body as Synapse does:
// a missing action is M_MISSING_PARAM, another than cancel, restart or
// send M_INVALID_PARAM.
func ParseDelayedAction(body []byte) (string, error) {
	var b DelayedAction
	if err := json.Unmarshal(body, &b); err != nil {
		return "", mxerr.BadJSON("The body must be a JSON object")
	}
	if b.Action == nil {
		return "", mxerr.MissingParam("'action' is missing")
	}
	switch *b.Action {
	case "cancel", "restart", "send":
		return *b.Action, nil
	}
	return "", mxerr.InvalidParam("'action' is not one of 'cancel', 'restart', 'send'")
}

func (a *API) updateDelayed(r *http.Request, c *httpapi.Caller) (any, error) {
	var raw json.RawMessage
	if err := httpapi.ReadJSON(r, &raw); err != nil {
		return nil, err
	}
	action, err := ParseDelayedAction(raw)
	if err != nil {
		return nil, err
	}
	id := r.PathValue("delayId")
	switch action {
	case "cancel":
		err = a.delayed.Cancel(r.Context(), c.UserID, id)
	case "restart":
		err = a.delayed.Restart(r.Context(), c.UserID, id)
	default:
		err = a.delayed.SendNow(r.Context(), c.UserID, id)
	}
	if err != nil {
		return nil, err
	}
	return empty, nil
}

// listDelayed answers the caller's delayed events as Synapse does:
// "scheduled" and "finalised" (both without a status parameter, else
// those asked for), and without one also "delayed_events", the
// scheduled ones under the MSC's earlier name; delay_id parameters
// keep only those events.
func (a *API) listDelayed(r *http.Request, c *httpapi.Caller) (any, error) {
	q := r.URL.Query()
	statuses := q["status"]
	for _, s := range statuses {
		if s != "scheduled" && s != "finalised" {
			return nil, mxerr.InvalidParam("status must be scheduled or finalised")
		}
	}
	wantSched := len(statuses) == 0 || slices.Contains(statuses, "scheduled")
	wantFin := len(statuses) == 0 || slices.Contains(statuses, "finalised")
	sched, fin, err := a.delayed.List(r.Context(), c.UserID, wantSched, wantFin)
	if err != nil {
		return nil, err
	}
	ids := q["delay_id"]
	render := func(evs []delayed.Event) []map[string]any {
		out := []map[string]any{}
		for _, e := range evs {
			if len(ids) > 0 && !slices.Contains(ids, e.DelayID) {
				continue
			}
			m := map[string]any{"delay_id": e.DelayID, "room_id": e.RoomID, "type": e.Type, "content": e.Content,
				"delay_ms": e.DelayMS, "delayed_since_ts": e.DelayedSinceTS,
				// The field names of the MSC's earlier revisions, which
				// Synapse still sends.
				"delay": e.DelayMS, "running_since": e.DelayedSinceTS}
			if e.StateKey != nil {
				m["state_key"] = *e.StateKey
			}
			if f := e.Finalised; f != nil {
				fm := map[string]any{"finalised_ts": f.TS}
				if f.EventID != "" {
					fm["event_id"] = f.EventID
				} else if f.Error != "" {
					fm["error"] = json.RawMessage(f.Error)
				}
				m["finalised"] = fm
			}
			out = append(out, m)
		}
		return out
	}
	resp := map[string]any{}
	if wantSched {
		resp["scheduled"] = render(sched)
	}
	if wantFin {
		resp["finalised"] = render(fin)
	}
	if len(statuses) == 0 {
		resp["delayed_events"] = resp["scheduled"]
	}
	return resp, nil
}
