// Package admin serves the parts of Synapse's admin API
// (/_synapse/admin/...) that Myelin implements, so that Synapse's tools
// and scripts work unchanged.
package admin

import (
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/myelin-chat/myelin/internal/accounts"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/regtokens"
	"github.com/myelin-chat/myelin/internal/reports"
)

// API is the admin API.
type API struct {
	accounts     *accounts.Service
	tokens       *regtokens.Service
	reports      *reports.Admin
	sharedSecret string
	noncesMu     sync.Mutex
	nonces       map[string]time.Time
	now          func() time.Time
}

// New makes the admin API; sharedSecret "" disables shared-secret registration.
func New(acc *accounts.Service, tokens *regtokens.Service, reps *reports.Admin, sharedSecret string) *API {
	return &API{accounts: acc, tokens: tokens, reports: reps, sharedSecret: sharedSecret, nonces: map[string]time.Time{}, now: time.Now}
}

// Register adds the admin routes.
func (a *API) Register(rt *httpapi.Router) {
	const p = "/_synapse/admin/v1"
	rt.Add(httpapi.Route{Method: http.MethodGet, Path: p + "/register", Handler: a.registerNonce, RateLimit: "register"})
	rt.Add(httpapi.Route{Method: http.MethodPost, Path: p + "/register", Handler: a.registerWithSecret, RateLimit: "register"})
	rt.Add(httpapi.Route{Method: http.MethodGet, Path: p + "/registration_tokens", Auth: httpapi.AuthRequired, Handler: a.adminOnly(a.listTokens)})
	rt.Add(httpapi.Route{Method: http.MethodPost, Path: p + "/registration_tokens/new", Auth: httpapi.AuthRequired, Handler: a.adminOnly(a.newToken)})
	rt.Add(httpapi.Route{Method: http.MethodGet, Path: p + "/registration_tokens/{token}", Auth: httpapi.AuthRequired, Handler: a.adminOnly(a.getToken)})
	rt.Add(httpapi.Route{Method: http.MethodPut, Path: p + "/registration_tokens/{token}", Auth: httpapi.AuthRequired, Handler: a.adminOnly(a.updateToken)})
	rt.Add(httpapi.Route{Method: http.MethodDelete, Path: p + "/registration_tokens/{token}", Auth: httpapi.AuthRequired, Handler: a.adminOnly(a.deleteToken)})
	a.registerReports(rt)
	a.registerModeration(rt)
}

func (a *API) adminOnly(h httpapi.Handler) httpapi.Handler { return adminOnly(h) }

// adminOnly refuses callers who are not server admins (403 M_FORBIDDEN,
// as Synapse's assert_requester_is_admin) and logs every request that
// may change something (any method but GET and HEAD): who asked, what,
// and how it ended, refusals included (issue 17 item 7).
func adminOnly(h httpapi.Handler) httpapi.Handler {
	return func(r *http.Request, c *httpapi.Caller) (any, error) {
		if !c.IsAdmin {
			err := mxerr.Forbidden("You are not a server admin")
			auditAdmin(r, c, err)
			return nil, err
		}
		body, err := h(r, c)
		auditAdmin(r, c, err)
		return body, err
	}
}

// auditAdmin logs an admin request that may change something.
func auditAdmin(r *http.Request, c *httpapi.Caller, err error) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return
	}
	outcome, level := "ok", slog.LevelInfo
	if err != nil {
		outcome, level = "error", slog.LevelWarn
		if e, ok := mxerr.As(err); ok {
			outcome = e.Code
		}
	}
	httpapi.Logger(r).Log(r.Context(), level, "admin action", "admin", c.UserID, "is_admin", c.IsAdmin,
		"method", r.Method, "path", r.URL.Path, "outcome", outcome)
}
