package admin

import (
	"log/slog"
	"net/http"
	"strconv"
	"sync"

	"github.com/myelin-chat/myelin/internal/federation/remote"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/media"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/statistics"
)

// Operations serves the admin API of the server's running: media
// (media.go), federation destinations (destinations.go), the server's
// version, statistics and background jobs (server.go).
type Operations struct {
	media        *media.Service
	destinations *remote.Destinations
	stats        *statistics.Service
	version      string
	log          *slog.Logger

	// backgroundMu guards backgroundEnabled: Synapse's
	// background_updates/enabled flag, kept in memory as Synapse does.
	backgroundMu      sync.Mutex
	backgroundEnabled bool
}

// OperationsDeps are what Operations serves from.
type OperationsDeps struct {
	Media *media.Service
	// Destinations answers the federation admin API (nil: federation off,
	// an empty list).
	Destinations *remote.Destinations
	Statistics   *statistics.Service
	// Version is the server_version answered.
	Version string
	Log     *slog.Logger
}

// NewOperations makes the handlers.
func NewOperations(d OperationsDeps) *Operations {
	if d.Log == nil {
		d.Log = slog.Default()
	}
	return &Operations{media: d.Media, destinations: d.Destinations, stats: d.Statistics, version: d.Version, log: d.Log,
		backgroundEnabled: true}
}

// Register adds the routes, every one for server admins only.
func (o *Operations) Register(rt *httpapi.Router) {
	for _, r := range o.routes() {
		r.Auth = httpapi.AuthRequired
		r.Handler = adminOnly(r.Handler)
		rt.Add(r)
	}
}

func (o *Operations) routes() []httpapi.Route {
	var out []httpapi.Route
	out = append(out, o.mediaRoutes()...)
	out = append(out, o.destinationRoutes()...)
	out = append(out, o.serverRoutes()...)
	return out
}

// audit logs an admin action with who did it (issue 17 item 7).
func (o *Operations) audit(r *http.Request, c *httpapi.Caller, action string, args ...any) {
	o.log.InfoContext(r.Context(), "admin action", append([]any{"admin", c.UserID, "action", action}, args...)...)
}

// offsetPage reads Synapse's offset pagination: from (default 0) and limit
// (default 100), both non-negative integers.
func offsetPage(r *http.Request) (from, limit int, err error) {
	q := r.URL.Query()
	if from, err = nonNegative(q.Get("from"), 0, "from"); err != nil {
		return 0, 0, err
	}
	if limit, err = nonNegative(q.Get("limit"), 100, "limit"); err != nil {
		return 0, 0, err
	}
	return from, limit, nil
}

// direction reads dir: f (the default) or b, which reverses the order.
func direction(r *http.Request) (reverse bool, err error) {
	switch d := r.URL.Query().Get("dir"); d {
	case "", "f":
		return false, nil
	case "b":
		return true, nil
	default:
		return false, mxerr.InvalidParam("Unknown direction: %s", d)
	}
}

// window cuts [from, from+limit) out of n items, and the next_token
// offset when more follow (-1 when none do).
func window(n, from, limit int) (lo, hi, next int) {
	lo = min(from, n)
	hi = min(lo+limit, n)
	next = -1
	if hi < n {
		next = hi
	}
	return lo, hi, next
}

// timestamp reads a non-negative millisecond timestamp query parameter.
func timestamp(r *http.Request, name string, def int64) (int64, bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, false, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, true, mxerr.InvalidParam("Query parameter %s must be a non-negative integer", name)
	}
	return n, true, nil
}
