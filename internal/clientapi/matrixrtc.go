package clientapi

import (
	"maps"
	"net/http"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/httpapi"
)

// withMatrixRTCFeatures adds to /versions' unstable_features the flags of
// what Element Call needs: MSC4140 delayed events (set only when they
// are on, as Synapse sets it from max_event_delay_duration), MSC4143 RTC
// transports (set when foci are configured, Synapse's msc4143_enabled:
// Element Call and checkers of call set-ups read the flag before asking
// for the transports) and MSC4306 thread subscriptions.
func (a *API) withMatrixRTCFeatures(base map[string]bool) map[string]bool {
	out := maps.Clone(base)
	out["org.matrix.msc4140"] = a.delayed != nil && a.delayed.Enabled()
	out["org.matrix.msc4143"] = len(a.cfg.WellKnown.RTCFoci) > 0
	out["org.matrix.msc4306"] = a.threadSubs != nil
	return out
}

func (a *API) registerMatrixRTC(rt *httpapi.Router) {
	// MSC4143: the transports a client may use for calls, as the
	// well-known document's rtc_foci; only for users of this server.
	h := func(*http.Request, *httpapi.Caller) (any, error) {
		foci := a.cfg.WellKnown.RTCFoci
		if foci == nil {
			foci = []config.RTCFocus{}
		}
		return map[string]any{"rtc_transports": foci}, nil
	}
	rt.Add(httpapi.Route{Method: http.MethodGet, Path: "/_matrix/client/unstable/org.matrix.msc4143/rtc/transports", Auth: httpapi.AuthRequired, AllowGuest: true, Handler: h})
	rt.Add(httpapi.Route{Method: http.MethodGet, Path: "/_matrix/client/v1/rtc/transports", Auth: httpapi.AuthRequired, AllowGuest: true, Handler: h})
}
