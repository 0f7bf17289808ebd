package clientapi

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

func (a *API) registerAccount(rt *httpapi.Router) {
	legacy(rt, httpapi.Route{Method: http.MethodGet, Path: "/account/whoami", Auth: httpapi.AuthRequired, AllowGuest: true, Handler: a.whoami})
	legacy(rt, httpapi.Route{Method: http.MethodPost, Path: "/account/password", Auth: httpapi.AuthRequired, Handler: a.changePassword})
	legacy(rt, httpapi.Route{Method: http.MethodPost, Path: "/account/deactivate", Auth: httpapi.AuthRequired, Handler: a.deactivate})
}

func (a *API) now() int64 { return time.Now().UnixMilli() }

func (a *API) whoami(_ *http.Request, c *httpapi.Caller) (any, error) {
	return map[string]any{"user_id": c.UserID, "device_id": c.DeviceID, "is_guest": c.IsGuest}, nil
}

func (a *API) changePassword(r *http.Request, c *httpapi.Caller) (any, error) {
	var req struct {
		Auth          json.RawMessage `json:"auth"`
		NewPassword   string          `json:"new_password"`
		LogoutDevices *bool           `json:"logout_devices"`
	}
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return nil, err
	}
	if len(req.NewPassword) > maxPasswordLen {
		return nil, mxerr.WeakPassword("Password too long")
	}
	sess, err := a.withUIA(r, c, req.Auth)
	if err != nil {
		return nil, err
	}
	if req.NewPassword == "" {
		return nil, mxerr.MissingParam("Missing new_password")
	}
	// logout_devices defaults to true; the requesting device stays.
	logout := req.LogoutDevices == nil || *req.LogoutDevices
	if _, err := a.accounts.ChangePassword(r.Context(), c.Localpart, req.NewPassword, logout, c.DeviceID); err != nil {
		return nil, err
	}
	_ = a.uia.Finish(r.Context(), sess)
	return empty, nil
}

func (a *API) deactivate(r *http.Request, c *httpapi.Caller) (any, error) {
	var req struct {
		Auth  json.RawMessage `json:"auth"`
		Erase bool            `json:"erase"`
	}
	if err := httpapi.ReadOptionalJSON(r, &req); err != nil {
		return nil, err
	}
	sess, err := a.withUIA(r, c, req.Auth)
	if err != nil {
		return nil, err
	}
	if err := a.membership.PartAll(r.Context(), c.UserID); err != nil {
		return nil, err
	}
	if err := a.accounts.Deactivate(r.Context(), c.Localpart, req.Erase); err != nil {
		return nil, err
	}
	_ = a.uia.Finish(r.Context(), sess)
	// No identity server is ever bound by this server.
	return map[string]string{"id_server_unbind_result": "no-support"}, nil
}
