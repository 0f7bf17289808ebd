package admin

import (
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/myelin-chat/myelin/internal/accounts"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// Account moderation endpoints: spec v1.18's GET/PUT
// /_matrix/client/v1/admin/suspend/{userId} and .../lock/{userId}
// (MSC4323, also under its unstable prefix), and Synapse's
// PUT /_synapse/admin/v1/suspend/{userId} that synapse-admin, Ketesa and
// Draupnir call. Locking through Synapse's API is the `locked` field of
// PUT /_synapse/admin/v2/users/{userId}, served with the users API.

func (a *API) registerModeration(rt *httpapi.Router) {
	for _, prefix := range []string{"/_matrix/client/v1/admin", "/_matrix/client/unstable/uk.timedout.msc4323/admin"} {
		for _, m := range []struct {
			path, field string
			r           accounts.Restriction
		}{{"/suspend/{userId}", "suspended", accounts.Suspension}, {"/lock/{userId}", "locked", accounts.Lock}} {
			rt.Add(httpapi.Route{Method: http.MethodGet, Path: prefix + m.path, Auth: httpapi.AuthRequired,
				Handler: adminOnly(a.getRestriction(m.field, m.r))})
			rt.Add(httpapi.Route{Method: http.MethodPut, Path: prefix + m.path, Auth: httpapi.AuthRequired,
				Handler: adminOnly(a.putRestriction(m.field, m.r))})
		}
	}
	rt.Add(httpapi.Route{Method: http.MethodPut, Path: "/_synapse/admin/v1/suspend/{userId}", Auth: httpapi.AuthRequired,
		Handler: adminOnly(a.synapseSuspend)})
}

// specModeration are the spec endpoints' rules: another admin is not a
// target, nor is the caller's own account for a change, and a remote
// user is 400 M_INVALID_PARAM.
var specModeration = accounts.ModerationRules{SparesAdmins: true,
	NotLocal: mxerr.InvalidParam("User does not belong to the local server")}

func restricted(u accounts.User, r accounts.Restriction) bool {
	if r == accounts.Lock {
		return u.Locked
	}
	return u.Suspended
}

func (a *API) getRestriction(field string, r accounts.Restriction) httpapi.Handler {
	return func(req *http.Request, c *httpapi.Caller) (any, error) {
		u, err := a.accounts.ModerationTarget(req.Context(), c.UserID, req.PathValue("userId"), false, specModeration)
		if err != nil {
			return nil, err
		}
		return map[string]bool{field: restricted(u, r)}, nil
	}
}

func (a *API) putRestriction(field string, r accounts.Restriction) httpapi.Handler {
	return func(req *http.Request, c *httpapi.Caller) (any, error) {
		// The body is read after the authorisation (adminOnly) and
		// before the lookup: a bad body answers the same for every user.
		on, err := boolBody(req, field)
		if err != nil {
			return nil, err
		}
		u, err := a.accounts.ModerationTarget(req.Context(), c.UserID, req.PathValue("userId"), true, specModeration)
		if err != nil {
			return nil, err
		}
		if err := a.accounts.Restrict(req.Context(), u.Localpart, r, on); err != nil {
			return nil, err
		}
		logRestriction(req, c, u.UserID, field, on)
		return map[string]bool{field: on}, nil
	}
}

// synapseSuspend is Synapse's PUT /_synapse/admin/v1/suspend/{userId}
// with {"suspend": bool}, answering {"user_<userId>_suspended": bool}
// as Synapse does.
func (a *API) synapseSuspend(req *http.Request, c *httpapi.Caller) (any, error) {
	on, err := boolBody(req, "suspend")
	if err != nil {
		return nil, err
	}
	u, err := a.accounts.ModerationTarget(req.Context(), c.UserID, req.PathValue("userId"), true,
		accounts.ModerationRules{NotLocal: mxerr.InvalidParam("Can only suspend local users")})
	if err != nil {
		return nil, err
	}
	if err := a.accounts.Restrict(req.Context(), u.Localpart, accounts.Suspension, on); err != nil {
		return nil, err
	}
	logRestriction(req, c, u.UserID, "suspended", on)
	return map[string]bool{"user_" + u.UserID + "_suspended": on}, nil
}

// boolBody reads a JSON object body whose field must be a boolean.
func boolBody(req *http.Request, field string) (bool, error) {
	var body map[string]json.RawMessage
	if err := httpapi.ReadJSON(req, &body); err != nil {
		return false, err
	}
	var v bool
	raw, ok := body[field]
	if !ok {
		return false, mxerr.BadJSON("Missing %s", field)
	}
	if err := json.Unmarshal(raw, &v); err != nil || string(raw) == "null" {
		return false, mxerr.BadJSON("%s must be a boolean", field)
	}
	return v, nil
}

// logRestriction records who changed whose restriction (issue 17: every
// admin action is logged with who did it).
func logRestriction(req *http.Request, c *httpapi.Caller, userID, field string, on bool) {
	slog.InfoContext(req.Context(), "admin: account moderation", "admin", c.UserID, "user", userID, field, on)
}
