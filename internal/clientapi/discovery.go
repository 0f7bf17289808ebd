package clientapi

import (
	"net"
	"net/http"
	"strconv"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
)

// specVersions are the client-server spec versions the server advertises:
// up to v1.11, whose authenticated media was the last requirement to
// land. Optional modules not served (3PID changes, TURN, third-party
// protocols, SSO) are answered as a server without them answers; later
// versions wait for their own additions (see docs/compliance.md).
var specVersions = []string{"r0.0.1", "r0.1.0", "r0.2.0", "r0.3.0", "r0.4.0", "r0.5.0", "r0.6.0", "r0.6.1",
	"v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10", "v1.11"}

func (a *API) registerDiscovery(rt *httpapi.Router) {
	rt.Add(httpapi.Route{Method: http.MethodGet, Path: "/_matrix/client/versions", Handler: a.versions, Auth: httpapi.AuthOptional})
	rt.Add(httpapi.Route{Method: http.MethodGet, Path: "/.well-known/matrix/client", Handler: a.wellKnownClient})
	rt.Add(httpapi.Route{Method: http.MethodGet, Path: "/.well-known/matrix/server", Handler: a.wellKnownServer})
	legacy(rt, httpapi.Route{Method: http.MethodGet, Path: "/capabilities", Auth: httpapi.AuthRequired, AllowGuest: true, Handler: a.capabilities})
	// What a server without third-party identifiers, TURN or bridges
	// answers, as Synapse does unconfigured; clients call these at start.
	legacy(rt, httpapi.Route{Method: http.MethodGet, Path: "/account/3pid", Auth: httpapi.AuthRequired, Handler: func(*http.Request, *httpapi.Caller) (any, error) {
		return map[string]any{"threepids": []any{}}, nil
	}})
	legacy(rt, httpapi.Route{Method: http.MethodGet, Path: "/voip/turnServer", Auth: httpapi.AuthRequired, AllowGuest: true, Handler: func(*http.Request, *httpapi.Caller) (any, error) {
		return map[string]any{}, nil
	}})
	legacy(rt, httpapi.Route{Method: http.MethodGet, Path: "/thirdparty/protocols", Auth: httpapi.AuthRequired, Handler: func(*http.Request, *httpapi.Caller) (any, error) {
		return map[string]any{}, nil
	}})
}

func (a *API) versions(*http.Request, *httpapi.Caller) (any, error) {
	return map[string]any{
		"versions": specVersions,
		"unstable_features": map[string]bool{
			// MSC3882 login tokens (spec v1.7's /login/get_token).
			"org.matrix.msc3882": true,
		},
	}, nil
}

// ClientBaseURL is m.homeserver.base_url: configured, or derived from the
// client listener.
func (a *API) ClientBaseURL() string {
	if u := a.cfg.WellKnown.ClientBaseURL; u != "" {
		return u
	}
	host, port, err := net.SplitHostPort(a.cfg.Listen.Client)
	if err != nil {
		return "http://" + a.cfg.Listen.Client
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = a.cfg.ServerName
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
	}
	return "http://" + net.JoinHostPort(host, port)
}

func (a *API) wellKnownClient(*http.Request, *httpapi.Caller) (any, error) {
	return map[string]any{"m.homeserver": map[string]string{"base_url": a.ClientBaseURL()}}, nil
}

// wellKnownServer delegates federation to the configured m.server, or to
// the federation listener's port on the server name.
func (a *API) wellKnownServer(*http.Request, *httpapi.Caller) (any, error) {
	server := a.cfg.WellKnown.Server
	if server == "" && a.cfg.Listen.Federation != "" {
		_, port, err := net.SplitHostPort(a.cfg.Listen.Federation)
		if err == nil {
			host := a.cfg.ServerName
			if h, _, err := net.SplitHostPort(host); err == nil {
				host = h
			}
			if p, _ := strconv.Atoi(port); p != 0 {
				server = net.JoinHostPort(host, port)
			}
		}
	}
	if server == "" {
		return nil, mxerr.NotFound("No server delegation is configured")
	}
	return map[string]string{"m.server": server}, nil
}

func (a *API) capabilities(*http.Request, *httpapi.Caller) (any, error) {
	available := map[string]string{}
	for _, v := range rooms.Versions() {
		available[string(v)] = "stable"
	}
	return map[string]any{"capabilities": map[string]any{
		"m.change_password": map[string]bool{"enabled": true},
		"m.set_displayname": map[string]bool{"enabled": true},
		"m.set_avatar_url":  map[string]bool{"enabled": true},
		"m.3pid_changes":    map[string]bool{"enabled": false},
		"m.get_login_token": map[string]bool{"enabled": true},
		"m.profile_fields":  map[string]bool{"enabled": true},
		"m.room_versions":   map[string]any{"default": a.cfg.Rooms.DefaultVersion, "available": available},
	}}, nil
}
