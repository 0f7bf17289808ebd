package clientapi

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

func (a *API) registerProfile(rt *httpapi.Router) {
	legacy(rt, httpapi.Route{Method: http.MethodGet, Path: "/profile/{userId}", Auth: httpapi.AuthOptional, Handler: a.getProfile})
	legacy(rt, httpapi.Route{Method: http.MethodGet, Path: "/profile/{userId}/{keyName}", Auth: httpapi.AuthOptional, Handler: a.getProfileField})
	// A suspended account may not change its profile (spec "Account
	// suspension").
	legacy(rt, httpapi.Route{Method: http.MethodPut, Path: "/profile/{userId}/{keyName}", Auth: httpapi.AuthRequired, AllowGuest: true, RefuseSuspended: true, Handler: a.setProfileField})
	legacy(rt, httpapi.Route{Method: http.MethodDelete, Path: "/profile/{userId}/{keyName}", Auth: httpapi.AuthRequired, AllowGuest: true, RefuseSuspended: true, Handler: a.deleteProfileField})
}

// profile returns a user's profile: from the accounts of this server,
// or asked of the user's server over federation.
func (a *API) profile(r *http.Request, field string) (map[string]json.RawMessage, error) {
	userID := r.PathValue("userId")
	// A malformed user ID is the client's mistake (400), whether or not
	// federation would have been asked: never a server that could not be
	// reached (502) nor a profile that is merely missing (404).
	if _, server, ok := strings.Cut(userID, ":"); !strings.HasPrefix(userID, "@") || !ok || config.ValidateServerName(server) != nil {
		return nil, mxerr.InvalidParam("Invalid user ID")
	}
	lp, local := a.accounts.LocalpartOf(userID)
	if local {
		return a.localProfile(r.Context(), userID, lp)
	}
	if a.federation == nil {
		return nil, mxerr.NotFound("Profile not found")
	}
	if _, err := spec.NewUserID(userID, true); err != nil {
		return nil, mxerr.InvalidParam("Invalid user ID")
	}
	remote, err := a.federation.QueryProfile(r.Context(), userID, field)
	if err != nil {
		return nil, err
	}
	out := make(map[string]json.RawMessage, len(remote))
	for k, v := range remote {
		raw, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		out[k] = raw
	}
	return out, nil
}

func (a *API) getProfile(r *http.Request, _ *httpapi.Caller) (any, error) {
	return a.profile(r, "")
}

func (a *API) getProfileField(r *http.Request, _ *httpapi.Caller) (any, error) {
	key := r.PathValue("keyName")
	p, err := a.profile(r, key)
	if err != nil {
		return nil, err
	}
	v, ok := p[key]
	if !ok {
		return nil, mxerr.NotFound("Profile field not found")
	}
	return map[string]json.RawMessage{key: v}, nil
}

// profileWriter checks that the caller may change the profile: their own,
// or anyone's for a server admin (Synapse lets admins do so).
func (a *API) profileWriter(r *http.Request, c *httpapi.Caller) (string, error) {
	target := r.PathValue("userId")
	lp, local := a.accounts.LocalpartOf(target)
	if target != c.UserID && !(c.IsAdmin && local) {
		return "", mxerr.Forbidden("Cannot change another user's profile")
	}
	// Guests may change only their display name (spec "Guest Access").
	if c.IsGuest && r.PathValue("keyName") != "displayname" {
		return "", mxerr.GuestAccessForbidden("Guests may only change their display name")
	}
	return lp, nil
}

func (a *API) setProfileField(r *http.Request, c *httpapi.Caller) (any, error) {
	lp, err := a.profileWriter(r, c)
	if err != nil {
		return nil, err
	}
	var body map[string]json.RawMessage
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return nil, err
	}
	key := r.PathValue("keyName")
	value, ok := body[key]
	if !ok {
		return nil, mxerr.MissingParam("Missing key '%s'", key)
	}
	if err := a.accounts.SetProfileField(r.Context(), lp, key, value); err != nil {
		return nil, err
	}
	return empty, a.membership.ProfileChanged(r.Context(), lp, key)
}

func (a *API) deleteProfileField(r *http.Request, c *httpapi.Caller) (any, error) {
	lp, err := a.profileWriter(r, c)
	if err != nil {
		return nil, err
	}
	key := r.PathValue("keyName")
	if err := a.accounts.DeleteProfileField(r.Context(), lp, key); err != nil {
		return nil, err
	}
	return empty, a.membership.ProfileChanged(r.Context(), lp, key)
}
