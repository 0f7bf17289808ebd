// Package httpapi is the HTTP plumbing every Matrix endpoint inherits:
// routing with Matrix-style 404/405 errors, JSON bodies, access-token
// authentication, rate limiting, CORS, request logs and metrics. It knows
// nothing of any particular endpoint.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"sort"
	"strings"

	"github.com/myelin-chat/myelin/internal/mxerr"
)

// AuthMode says whether a route needs an access token.
type AuthMode int

const (
	// AuthNone routes ignore any access token.
	AuthNone AuthMode = iota
	// AuthRequired routes refuse requests without a valid access token.
	AuthRequired
	// AuthOptional routes authenticate when a token is present.
	AuthOptional
)

// Caller is the authenticated user and device behind a request.
type Caller struct {
	UserID    string
	Localpart string
	DeviceID  string
	IsGuest   bool
	IsAdmin   bool
	// TokenHash identifies the access token used, for /logout.
	TokenHash string
	// Locked and Suspended are the account's moderation state (spec
	// "Account moderation"), enforced per route (Route.AllowLocked,
	// Route.RefuseSuspended) and by services.
	Locked, Suspended bool
	// ShadowBanned: the account's sends are answered with made-up
	// event IDs and not delivered (Synapse's shadow-ban).
	ShadowBanned bool
	// AppService is the id of the application service whose as_token
	// authenticated the request ("" for users' own tokens);
	// RateLimitExempt is set for one registered with rate_limited: false.
	AppService      string
	RateLimitExempt bool
}

// Authenticator resolves an access token to its caller. allowExpired
// accepts an expired (refreshable) token, which only logout does.
type Authenticator func(ctx context.Context, token string, r *http.Request, allowExpired bool) (*Caller, error)

// Handler serves a JSON endpoint: it returns the 200 response body or an
// error. A *Response return value sets another status.
type Handler func(r *http.Request, c *Caller) (any, error)

// Response is a body with a status other than 200.
type Response struct {
	Status int
	Body   any
}

// Route is one endpoint.
type Route struct {
	Method string
	// Path uses net/http pattern wildcards: /_matrix/client/v3/profile/{userId}.
	Path string
	Auth AuthMode
	// AllowGuest lets guest accounts call an AuthRequired route; the spec
	// lists the few endpoints guests may use.
	AllowGuest bool
	// AllowExpired accepts expired access tokens (Synapse does for logout,
	// so that a client can always end its session).
	AllowExpired bool
	// AllowLocked lets a locked account call a route with its token:
	// spec "Account locking" leaves it /logout and /logout/all alone
	// (Synapse also /versions); every other route that authenticates,
	// optional-auth ones included, answers 401 M_USER_LOCKED.
	AllowLocked bool
	// RefuseSuspended answers a suspended account 403 M_USER_SUSPENDED
	// (spec "Account suspension": joining, knocking, inviting, profile
	// changes); routes whose answer depends on the request decide in
	// their service instead.
	RefuseSuspended bool
	// RateLimit names the bucket the route draws from ("" for none).
	RateLimit string
	// MaxBodyBytes overrides the JSON body limit (media uploads).
	MaxBodyBytes int64
	Handler      Handler
	// Raw replaces Handler for endpoints that do not answer JSON.
	Raw func(w http.ResponseWriter, r *http.Request, c *Caller)

	params []string // the wildcard names of Path
}

// Router dispatches requests to routes.
type Router struct {
	mux    *http.ServeMux
	byPath map[string]map[string]*Route // path pattern -> method -> route
	deps   Deps
}

// Deps are the services the router's middleware uses.
type Deps struct {
	Authenticate Authenticator
	Limiter      RateLimiter
	MaxBodyBytes int64
	Logger       *slog.Logger
}

// RateLimiter takes one request from a bucket for a key, saying how long
// to wait when the bucket is empty.
type RateLimiter interface {
	Allow(bucket, key string) (ok bool, retryAfterMS int64)
}

// NewRouter makes an empty router.
func NewRouter(deps Deps) *Router {
	return &Router{mux: http.NewServeMux(), byPath: map[string]map[string]*Route{}, deps: deps}
}

// Add registers a route. A path may carry several methods.
func (rt *Router) Add(r Route) {
	methods, ok := rt.byPath[r.Path]
	if !ok {
		methods = map[string]*Route{}
		rt.byPath[r.Path] = methods
		rt.mux.Handle(r.Path, rt.dispatch(r.Path))
	}
	if _, dup := methods[r.Method]; dup {
		panic("httpapi: duplicate route " + r.Method + " " + r.Path)
	}
	route := r
	route.params = patternParams(r.Path)
	methods[r.Method] = &route
}

// Routes lists the registered routes as "METHOD pattern", sorted: for
// tests that check a rule over every route of a kind (every admin route
// refuses non-admins, say), so that a route added later cannot escape it.
func (rt *Router) Routes() []string {
	var out []string
	for path, methods := range rt.byPath {
		for m := range methods {
			out = append(out, m+" "+path)
		}
	}
	sort.Strings(out)
	return out
}

// dispatch picks the route for the method, answering 405 with a Matrix
// error (and an Allow header) when the path exists but the method does not.
func (rt *Router) dispatch(path string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		methods := rt.byPath[path]
		route, ok := methods[r.Method]
		if !ok && r.Method == http.MethodHead {
			route, ok = methods[http.MethodGet]
		}
		if !ok {
			allowed := make([]string, 0, len(methods))
			for m := range methods {
				allowed = append(allowed, m)
			}
			sort.Strings(allowed)
			w.Header().Set("Allow", strings.Join(append(allowed, http.MethodOptions), ", "))
			WriteError(w, mxerr.Unrecognized(http.StatusMethodNotAllowed, "Unrecognized request"))
			return
		}
		setRouteName(r, route.Method+" "+path)
		rt.serve(w, r, route)
	})
}

// ServeHTTP answers unknown paths with 404 M_UNRECOGNIZED.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := rt.mux.Handler(r); pattern == "" {
		WriteError(w, mxerr.Unrecognized(http.StatusNotFound, "Unrecognized request"))
		return
	}
	rt.mux.ServeHTTP(w, r)
}

func (rt *Router) serve(w http.ResponseWriter, r *http.Request, route *Route) {
	limit := rt.deps.MaxBodyBytes
	if route.MaxBodyBytes > 0 {
		limit = route.MaxBodyBytes
	}
	if limit > 0 {
		r.Body = http.MaxBytesReader(w, r.Body, limit)
	}
	if err := checkParams(r, route.params); err != nil {
		WriteError(w, err)
		return
	}
	var caller *Caller
	if route.Auth != AuthNone {
		token, present, err := AccessToken(r)
		switch {
		case err != nil:
			WriteError(w, err)
			return
		case present && token == "":
			// An Authorization header that is not "Bearer <token>"
			// carries no access token (Synapse: M_MISSING_TOKEN).
			WriteError(w, mxerr.MissingToken("Invalid Authorization header"))
			return
		case present:
			c, err := rt.deps.Authenticate(r.Context(), token, r, route.AllowExpired)
			if err != nil {
				WriteError(w, err)
				return
			}
			caller = c
			setCaller(r, c)
		case route.Auth == AuthRequired:
			WriteError(w, mxerr.MissingToken("Missing access token"))
			return
		}
		if caller != nil && caller.IsGuest && route.Auth == AuthRequired && !route.AllowGuest {
			WriteError(w, mxerr.GuestAccessForbidden("Guest access not allowed"))
			return
		}
		// A locked account's token is refused on optional-auth routes
		// too (profiles, the directory, room summaries): the spec spares
		// only the logout endpoints, and Synapse only /versions
		// (allow_locked), which set AllowLocked.
		if caller != nil && caller.Locked && !route.AllowLocked {
			WriteError(w, mxerr.UserLocked())
			return
		}
		if caller != nil && caller.Suspended && route.RefuseSuspended {
			WriteError(w, mxerr.UserSuspended())
			return
		}
	}
	if route.RateLimit != "" && rt.deps.Limiter != nil && (caller == nil || !caller.RateLimitExempt) {
		key := "ip:" + ClientIP(r)
		if caller != nil {
			key = "user:" + caller.UserID
		}
		if ok, retry := rt.deps.Limiter.Allow(route.RateLimit, key); !ok {
			WriteError(w, mxerr.LimitExceeded(retry))
			return
		}
	}
	if route.Raw != nil {
		route.Raw(w, r, caller)
		return
	}
	body, err := route.Handler(r, caller)
	if err != nil {
		if _, ok := mxerr.As(err); !ok {
			rt.deps.Logger.ErrorContext(r.Context(), "internal error", "method", r.Method, "path", r.URL.Path, "err", err)
		}
		WriteError(w, err)
		return
	}
	if resp, ok := body.(*Response); ok {
		WriteJSON(w, resp.Status, resp.Body)
		return
	}
	WriteJSON(w, http.StatusOK, body)
}

// AccessToken extracts the token from the Authorization header or, as
// the spec still allows, the access_token query parameter. A request
// that carries both, or several Authorization headers, is refused
// rather than guessed at, as Synapse does (401 M_MISSING_TOKEN): the two
// could name different users.
func AccessToken(r *http.Request) (token string, present bool, err error) {
	headers := r.Header.Values("Authorization")
	_, inQuery := r.URL.Query()["access_token"]
	if len(headers) > 0 {
		if len(headers) > 1 {
			return "", true, mxerr.MissingToken("Too many Authorization headers")
		}
		if inQuery {
			return "", true, mxerr.MissingToken("Mixing Authorization headers and access_token query parameters")
		}
		if t, ok := strings.CutPrefix(headers[0], "Bearer "); ok {
			return strings.TrimSpace(t), true, nil
		}
		return "", true, nil
	}
	if t := r.URL.Query().Get("access_token"); t != "" {
		return t, true, nil
	}
	return "", false, nil
}
