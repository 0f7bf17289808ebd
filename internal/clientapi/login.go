package clientapi

import (
	"encoding/json"
	"net/http"

	"github.com/myelin-chat/myelin/internal/accounts"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

func (a *API) registerLogin(rt *httpapi.Router) {
	legacy(rt, httpapi.Route{Method: http.MethodGet, Path: "/login", Handler: a.loginFlows})
	legacy(rt, httpapi.Route{Method: http.MethodPost, Path: "/login", Handler: a.login, RateLimit: LimitLogin})
	legacy(rt, httpapi.Route{Method: http.MethodPost, Path: "/logout", Auth: httpapi.AuthRequired, AllowGuest: true, AllowExpired: true, AllowLocked: true, Handler: a.logout})
	legacy(rt, httpapi.Route{Method: http.MethodPost, Path: "/logout/all", Auth: httpapi.AuthRequired, AllowGuest: true, AllowExpired: true, AllowLocked: true, Handler: a.logoutAll})
	legacy(rt, httpapi.Route{Method: http.MethodPost, Path: "/refresh", Handler: a.refresh})
	v1(rt, httpapi.Route{Method: http.MethodPost, Path: "/login/get_token", Auth: httpapi.AuthRequired, RateLimit: LimitLogin, Handler: a.getLoginToken})
}

func (a *API) loginFlows(*http.Request, *httpapi.Caller) (any, error) {
	flows := []map[string]any{
		{"type": "m.login.password"},
		{"type": "m.login.token", "get_login_token": true},
	}
	if len(a.appservices.All()) > 0 {
		flows = append(flows, map[string]any{"type": loginTypeAppService})
	}
	return map[string]any{"flows": flows}, nil
}

type loginRequest struct {
	Type                     string  `json:"type"`
	Password                 string  `json:"password"`
	Token                    string  `json:"token"`
	DeviceID                 string  `json:"device_id"`
	InitialDeviceDisplayName *string `json:"initial_device_display_name"`
	RefreshToken             bool    `json:"refresh_token"`
	// Identifier and the deprecated User are read by loginUser.
	Identifier json.RawMessage `json:"identifier"`
	User       json.RawMessage `json:"user"`
}

// identity is the subset of the body loginUser reads.
func (req loginRequest) identity() map[string]json.RawMessage {
	fields := map[string]json.RawMessage{}
	if req.Identifier != nil {
		fields["identifier"] = req.Identifier
	}
	if req.User != nil {
		fields["user"] = req.User
	}
	return fields
}

func (a *API) login(r *http.Request, _ *httpapi.Caller) (any, error) {
	var req loginRequest
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return nil, err
	}
	var user accounts.User
	var err error
	switch req.Type {
	case "m.login.password":
		var id string
		if id, err = loginUser(req.identity()); err != nil {
			return nil, err
		}
		user, err = a.accounts.PasswordLogin(r.Context(), id, req.Password)
	case "m.login.token":
		if req.Token == "" {
			return nil, mxerr.MissingParam("Missing token")
		}
		user, err = a.accounts.TokenLogin(r.Context(), req.Token)
	case loginTypeAppService:
		var id string
		if id, err = loginUser(req.identity()); err != nil {
			return nil, err
		}
		user, err = a.appServiceLogin(r, id)
	case "":
		return nil, mxerr.MissingParam("Missing login type")
	default:
		return nil, &mxerr.Error{Status: http.StatusBadRequest, Code: "M_UNKNOWN", Message: "Unknown login type " + req.Type}
	}
	if err != nil {
		return nil, err
	}
	login, err := a.accounts.StartSession(r.Context(), accounts.SessionRequest{
		Localpart: user.Localpart, DeviceID: req.DeviceID, DisplayName: req.InitialDeviceDisplayName,
		Refresh: req.RefreshToken, IP: httpapi.ClientIP(r), Agent: r.UserAgent(),
	})
	if err != nil {
		return nil, err
	}
	body := a.loginBody(login)
	body["well_known"] = map[string]any{"m.homeserver": map[string]string{"base_url": a.ClientBaseURL()}}
	return body, nil
}

// loginBody is the response shared by /login and /register.
func (a *API) loginBody(l accounts.Login) map[string]any {
	body := map[string]any{
		"user_id": l.UserID, "access_token": l.AccessToken, "device_id": l.DeviceID,
		"home_server": a.cfg.ServerName,
	}
	if l.RefreshToken != "" {
		body["refresh_token"] = l.RefreshToken
		body["expires_in_ms"] = l.ExpiresInMS
	}
	return body
}

func (a *API) logout(r *http.Request, c *httpapi.Caller) (any, error) {
	return empty, a.accounts.Logout(r.Context(), c.Localpart, c.DeviceID)
}

func (a *API) logoutAll(r *http.Request, c *httpapi.Caller) (any, error) {
	return empty, a.accounts.LogoutAll(r.Context(), c.Localpart)
}

func (a *API) refresh(r *http.Request, _ *httpapi.Caller) (any, error) {
	var req struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return nil, err
	}
	if req.RefreshToken == "" {
		return nil, mxerr.MissingParam("Missing refresh_token")
	}
	l, err := a.accounts.Refresh(r.Context(), req.RefreshToken)
	if err != nil {
		return nil, err
	}
	return map[string]any{"access_token": l.AccessToken, "refresh_token": l.RefreshToken, "expires_in_ms": l.ExpiresInMS}, nil
}

// getLoginToken issues an m.login.token for signing in another device
// (spec v1.7, MSC3882), after re-authentication as Synapse requires.
func (a *API) getLoginToken(r *http.Request, c *httpapi.Caller) (any, error) {
	var req struct {
		Auth json.RawMessage `json:"auth"`
	}
	if err := httpapi.ReadOptionalJSON(r, &req); err != nil {
		return nil, err
	}
	sess, err := a.withUIA(r, c, req.Auth)
	if err != nil {
		return nil, err
	}
	token, expires, err := a.accounts.CreateLoginToken(r.Context(), c.Localpart)
	if err != nil {
		return nil, err
	}
	_ = a.uia.Finish(r.Context(), sess)
	return map[string]any{"login_token": token, "expires_in_ms": expires}, nil
}
