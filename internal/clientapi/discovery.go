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
// up to v1.19, whose requirements are all met; docs/compliance.md ("Spec
// versions v1.12 to v1.19") lists each requirement and where it is met.
// Optional modules not served (3PID changes, TURN, third-party
// protocols, SSO, OAuth 2.0) are answered as a server without them
// answers; later versions wait for their own additions.
var specVersions = []string{"r0.0.1", "r0.1.0", "r0.2.0", "r0.3.0", "r0.4.0", "r0.5.0", "r0.6.0", "r0.6.1",
	"v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8", "v1.9", "v1.10", "v1.11", "v1.12",
	"v1.13", "v1.14", "v1.15", "v1.16", "v1.17", "v1.18", "v1.19"}

func (a *API) registerDiscovery(rt *httpapi.Router) {
	rt.Add(httpapi.Route{Method: http.MethodGet, Path: "/_matrix/client/versions", Handler: a.versions, Auth: httpapi.AuthOptional, AllowLocked: true})
	rt.Add(httpapi.Route{Method: http.MethodGet, Path: "/.well-known/matrix/client", Handler: a.wellKnownClient})
	rt.Add(httpapi.Route{Method: http.MethodGet, Path: "/.well-known/matrix/server", Handler: a.wellKnownServer})
	legacy(rt, httpapi.Route{Method: http.MethodGet, Path: "/capabilities", Auth: httpapi.AuthRequired, AllowGuest: true, Handler: a.capabilities})
	// What a server without third-party identifiers, TURN or bridges
	// answers, as Synapse does unconfigured; clients call these at start.
	legacy(rt, httpapi.Route{Method: http.MethodGet, Path: "/account/3pid", Auth: httpapi.AuthRequired, Handler: func(*http.Request, *httpapi.Caller) (any, error) {
		return map[string]any{"threepids": []any{}}, nil
	}})
	// Spec v1.13 (MSC4178): a server that sends no validation tokens
	// answers every requestToken endpoint 400 M_THREEPID_MEDIUM_NOT_SUPPORTED,
	// so that a client stops offering the medium instead of reading a 404
	// as "try again elsewhere".
	for _, path := range []string{"/register/email/requestToken", "/register/msisdn/requestToken",
		"/account/password/email/requestToken", "/account/password/msisdn/requestToken",
		"/account/3pid/email/requestToken", "/account/3pid/msisdn/requestToken"} {
		legacy(rt, httpapi.Route{Method: http.MethodPost, Path: path, Handler: func(*http.Request, *httpapi.Caller) (any, error) {
			return nil, mxerr.ThreepidMediumNotSupported("This server does not validate third-party identifiers")
		}})
	}
	legacy(rt, httpapi.Route{Method: http.MethodGet, Path: "/voip/turnServer", Auth: httpapi.AuthRequired, AllowGuest: true, Handler: func(*http.Request, *httpapi.Caller) (any, error) {
		return map[string]any{}, nil
	}})
	// Spec v1.15 "OAuth 2.0 API": a server that does not offer it answers
	// 404 M_UNRECOGNIZED, which tells clients to use the legacy login API.
	// The MSC2965 path is what clients released before v1.15 ask, and
	// what Synapse answers the same way without OAuth delegation.
	noOAuth := func(*http.Request, *httpapi.Caller) (any, error) {
		return nil, mxerr.Unrecognized(http.StatusNotFound, "This server does not support the OAuth 2.0 API")
	}
	v1(rt, httpapi.Route{Method: http.MethodGet, Path: "/auth_metadata", Handler: noOAuth})
	for _, p := range []string{"/org.matrix.msc2965/auth_metadata", "/org.matrix.msc2965/auth_issuer"} {
		rt.Add(httpapi.Route{Method: http.MethodGet, Path: "/_matrix/client/unstable" + p, Handler: noOAuth})
	}
}

// unstableFeatures are the /versions unstable_features flags: those
// Synapse sets for a capability Myelin has, which clients still read
// instead of (or besides) a spec version. docs/compliance.md lists which
// client reads which. A flag is true only when the capability is served
// as the MSC and the spec describe it; a flag Synapse sets for something
// Myelin lacks is false, so a client does not wait for a server without it.
var unstableFeatures = map[string]bool{
	// MSC1756 cross-signing: Element Web sets up cross-signing, shows its
	// settings and the verify button only when this is set, whatever
	// the spec versions say.
	"org.matrix.e2e_cross_signing": true,
	// MSC2432 GET /rooms/{roomId}/aliases.
	"org.matrix.msc2432": true,
	// MSC2666 GET /v1/mutual_rooms (spec v1.19); mautrix-go takes the
	// stable path only when this is set or v1.19 is advertised.
	"uk.half-shot.msc2666.query_mutual_rooms.stable": true,
	// MSC2285 private read receipts (m.read.private).
	"org.matrix.msc2285.stable": true,
	// MSC3827 room_types in the /publicRooms filter.
	"org.matrix.msc3827.stable": true,
	// MSC3440 threads; MSC3771 threaded receipts; MSC3773 per-thread
	// notification counts (unread_thread_notifications): matrix-js-sdk
	// turns thread support on from these.
	"org.matrix.msc3440.stable": true,
	"org.matrix.msc3771":        true,
	"org.matrix.msc3773":        true,
	// MSC3882 login tokens (spec v1.7's /login/get_token).
	"org.matrix.msc3882": true,
	// MSC3981 recurse on /relations.
	"org.matrix.msc3981": true,
	// MSC4222 state_after in /sync (spec v1.16), also under its unstable
	// names org.matrix.msc4222.use_state_after and .state_after; clients
	// written before v1.16 ask for it only when this is set.
	"org.matrix.msc4222": true,
	// MSC4155 invite filtering (org.matrix.msc4155.invite_permission_config
	// account data), which Synapse advertises so.
	"org.matrix.msc4155": true,
	// MSC4380 invite blocking (spec v1.18's m.invite_permission_config),
	// which Element reads before it offers "block all invites" while
	// the server does not advertise v1.18.
	"org.matrix.msc4380": true,
	// MSC4133 arbitrary profile fields (spec v1.16).
	"uk.tcpip.msc4133.stable": true,
	// MSC4169 redactions sent with PUT /send/m.room.redaction (spec
	// v1.18); mautrix-go bridges send them there only when this is set.
	"com.beeper.msc4169": true,
	// MSC4194 redaction of a user's events in a room (redactuser.go):
	// Meowlnir and Draupnir, through mautrix-go, use it only when set.
	"org.matrix.msc4194": true,
	// New rooms are not encrypted by default whatever their preset
	// (Synapse: encryption_enabled_by_default_for_room_type, off by
	// default); Element reads these to lock the encryption toggle.
	"io.element.e2ee_forced.public":          false,
	"io.element.e2ee_forced.private":         false,
	"io.element.e2ee_forced.trusted_private": false,
	// Label-based filtering (MSC2326) is not implemented.
	"org.matrix.label_based_filtering": false,
	// Simplified sliding sync (MSC4186, internal/slidingsync): Element X
	// (matrix-rust-sdk) reads this and refuses a server without it.
	"org.matrix.simplified_msc3575": true,
}

func (a *API) versions(*http.Request, *httpapi.Caller) (any, error) {
	return map[string]any{
		"versions":          specVersions,
		"unstable_features": a.withMatrixRTCFeatures(unstableFeatures),
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
	doc := map[string]any{"m.homeserver": map[string]string{"base_url": a.ClientBaseURL()}}
	if len(a.cfg.WellKnown.RTCFoci) > 0 {
		// MSC4143: Element Call reads the unstable key; rtc_foci is
		// the MSC's own name.
		doc["org.matrix.msc4143.rtc_foci"] = a.cfg.WellKnown.RTCFoci
		doc["rtc_foci"] = a.cfg.WellKnown.RTCFoci
	}
	return doc, nil
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

func (a *API) capabilities(_ *http.Request, c *httpapi.Caller) (any, error) {
	available := map[string]string{}
	for _, v := range rooms.Versions() {
		available[string(v)] = "stable"
	}
	caps := map[string]any{
		"m.change_password": map[string]bool{"enabled": true},
		"m.set_displayname": map[string]bool{"enabled": true},
		"m.set_avatar_url":  map[string]bool{"enabled": true},
		"m.3pid_changes":    map[string]bool{"enabled": false},
		"m.get_login_token": map[string]bool{"enabled": true},
		"m.profile_fields":  map[string]bool{"enabled": true},
		// Spec v1.18 (MSC4267): leaving a room does not forget it here;
		// the user forgets it with /forget, as with Synapse's default
		// (forget_rooms_on_leave: false).
		"m.forget_forced_upon_leave": map[string]bool{"enabled": false},
		"m.room_versions":            map[string]any{"default": a.cfg.Rooms.DefaultVersion, "available": available},
		// MSC4155: the server, not the client, applies the invitee's
		// invite permission config (internal/membership/invites.go).
		"org.matrix.msc4155.invite_permission_config_enforced": map[string]bool{"enabled": true},
	}
	// Spec v1.18 (MSC4323): present only for those who may use
	// /admin/suspend and /admin/lock, server admins.
	if c != nil && c.IsAdmin {
		caps["m.account_moderation"] = map[string]bool{"suspend": true, "lock": true}
	}
	return map[string]any{"capabilities": caps}, nil
}
