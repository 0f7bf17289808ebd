package httpapi

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/myelin-chat/myelin/internal/mxerr"
)

// requestInfo is filled in as a request travels through the stack, so
// that the outermost layer can log and measure what the inner ones found.
type requestInfo struct {
	ip    string
	route string
	user  string
	log   *slog.Logger
}

type infoKey struct{}

func info(r *http.Request) *requestInfo {
	if i, ok := r.Context().Value(infoKey{}).(*requestInfo); ok {
		return i
	}
	return &requestInfo{}
}

func setRouteName(r *http.Request, name string) { info(r).route = name }
func setCaller(r *http.Request, c *Caller)      { info(r).user = c.UserID }

// Logger is the server's logger, for handlers that log what they did
// (the admin API's audit lines); a request that did not come through
// Wrap logs nowhere.
func Logger(r *http.Request) *slog.Logger {
	if l := info(r).log; l != nil {
		return l
	}
	return slog.New(slog.DiscardHandler)
}

// ClientIP is the address the request came from (after X-Forwarded-For
// when the server is configured to trust it).
func ClientIP(r *http.Request) string {
	if i := info(r); i.ip != "" {
		return i.ip
	}
	return remoteHost(r)
}

// forwardedIP reads an X-Forwarded-For entry, which the client may have
// written itself: only an IP address (with or without a port) is taken,
// since the address keys rate limits and is stored as a device's last
// seen IP.
func forwardedIP(s string) (string, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.WithZone("").String(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().WithZone("").String(), true
	}
	return "", false
}

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Metrics are the HTTP request counters and latency histograms.
type Metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// NewMetrics registers the HTTP metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "myelin_http_requests_total", Help: "HTTP requests by endpoint, method and status code.",
		}, []string{"endpoint", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "myelin_http_request_duration_seconds", Help: "HTTP request latency by endpoint.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"endpoint"}),
	}
	reg.MustRegister(m.requests, m.latency)
	return m
}

// StackOptions configure Wrap.
type StackOptions struct {
	Logger            *slog.Logger
	Metrics           *Metrics
	CORSOrigin        string
	TrustForwardedFor bool
}

// Wrap puts the behaviour every endpoint inherits around h: panic
// recovery, CORS and OPTIONS, request logging and metrics.
func Wrap(h http.Handler, opts StackOptions) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ri := &requestInfo{ip: remoteHost(r), route: "unrecognized", log: opts.Logger}
		if opts.TrustForwardedFor {
			if fwd := r.Header.Get("X-Forwarded-For"); fwd != "" {
				first, _, _ := strings.Cut(fwd, ",")
				if ip, ok := forwardedIP(strings.TrimSpace(first)); ok {
					ri.ip = ip
				}
			}
		}
		r = r.WithContext(context.WithValue(r.Context(), infoKey{}, ri))
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		setCORS(sw.Header(), opts.CORSOrigin)
		sw.Header().Set("Cache-Control", "no-cache, no-store, must-revalidate")
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				opts.Logger.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", p)
				if !sw.wrote {
					WriteError(sw, mxerr.Unknown("Internal server error"))
				}
			}
			elapsed := time.Since(start)
			if r.Method == http.MethodOptions {
				ri.route = "OPTIONS"
			}
			if opts.Metrics != nil {
				opts.Metrics.requests.WithLabelValues(ri.route, strconv.Itoa(sw.status)).Inc()
				opts.Metrics.latency.WithLabelValues(ri.route).Observe(elapsed.Seconds())
			}
			// The path only: the query may hold an access token.
			opts.Logger.Info("request", "method", r.Method, "path", r.URL.Path, "status", sw.status,
				"ms", float64(elapsed.Microseconds())/1000, "ip", ri.ip, "user", ri.user, "endpoint", ri.route)
		}()
		if r.Method == http.MethodOptions {
			// CORS preflight: any path, no authentication.
			sw.WriteHeader(http.StatusNoContent)
			return
		}
		h.ServeHTTP(sw, r)
	})
}

// setCORS sets the headers the client-server spec's "Web Browser Clients"
// section requires on every response.
func setCORS(h http.Header, origin string) {
	if origin == "" {
		origin = "*"
	}
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "X-Requested-With, Content-Type, Authorization")
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Flush lets streaming responses through.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap exposes the underlying writer to http.ResponseController.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
