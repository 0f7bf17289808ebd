package clientapi

import (
	"encoding/json"
	"net/http"

	"github.com/myelin-chat/myelin/internal/accounts"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

func (a *API) registerDevices(rt *httpapi.Router) {
	legacy(rt, httpapi.Route{Method: http.MethodGet, Path: "/devices", Auth: httpapi.AuthRequired, AllowGuest: true, Handler: a.listDevices})
	legacy(rt, httpapi.Route{Method: http.MethodGet, Path: "/devices/{deviceId}", Auth: httpapi.AuthRequired, AllowGuest: true, Handler: a.getDevice})
	legacy(rt, httpapi.Route{Method: http.MethodPut, Path: "/devices/{deviceId}", Auth: httpapi.AuthRequired, AllowGuest: true, Handler: a.updateDevice})
	legacy(rt, httpapi.Route{Method: http.MethodDelete, Path: "/devices/{deviceId}", Auth: httpapi.AuthRequired, Handler: a.deleteDevice})
	legacy(rt, httpapi.Route{Method: http.MethodPost, Path: "/delete_devices", Auth: httpapi.AuthRequired, Handler: a.deleteDevices})
}

type deviceJSON struct {
	DeviceID    string  `json:"device_id"`
	DisplayName *string `json:"display_name"`
	LastSeenIP  string  `json:"last_seen_ip,omitempty"`
	LastSeenTS  int64   `json:"last_seen_ts,omitempty"`
}

func toDeviceJSON(d accounts.Device) deviceJSON {
	return deviceJSON{DeviceID: d.DeviceID, DisplayName: d.DisplayName, LastSeenIP: d.LastSeenIP, LastSeenTS: d.LastSeenTS}
}

func (a *API) listDevices(r *http.Request, c *httpapi.Caller) (any, error) {
	ds, err := a.accounts.Devices(r.Context(), c.Localpart)
	if err != nil {
		return nil, err
	}
	out := make([]deviceJSON, len(ds))
	for i, d := range ds {
		out[i] = toDeviceJSON(d)
	}
	return map[string]any{"devices": out}, nil
}

func (a *API) getDevice(r *http.Request, c *httpapi.Caller) (any, error) {
	d, err := a.accounts.Device(r.Context(), c.Localpart, r.PathValue("deviceId"))
	if err != nil {
		return nil, err
	}
	return toDeviceJSON(d), nil
}

func (a *API) updateDevice(r *http.Request, c *httpapi.Caller) (any, error) {
	var req struct {
		DisplayName *string `json:"display_name"`
	}
	if err := httpapi.ReadOptionalJSON(r, &req); err != nil {
		return nil, err
	}
	if c.AppService != "" {
		// Spec v1.17 (MSC4190): a service creates its users' devices
		// here, 201 when new.
		created, err := a.accounts.PutDevice(r.Context(), c.Localpart, r.PathValue("deviceId"), req.DisplayName)
		if err != nil || !created {
			return empty, err
		}
		return &httpapi.Response{Status: http.StatusCreated, Body: empty}, nil
	}
	if req.DisplayName == nil {
		// The spec: "If not given, the display name is unchanged."
		_, err := a.accounts.Device(r.Context(), c.Localpart, r.PathValue("deviceId"))
		return empty, err
	}
	return empty, a.accounts.RenameDevice(r.Context(), c.Localpart, r.PathValue("deviceId"), req.DisplayName)
}

func (a *API) deleteDevice(r *http.Request, c *httpapi.Caller) (any, error) {
	var req struct {
		Auth json.RawMessage `json:"auth"`
	}
	if err := httpapi.ReadOptionalJSON(r, &req); err != nil {
		return nil, err
	}
	id := r.PathValue("deviceId")
	if _, err := a.accounts.Device(r.Context(), c.Localpart, id); err != nil {
		return nil, err
	}
	return empty, a.deleteWithUIA(r, c, req.Auth, []string{id})
}

// deleteWithUIA deletes devices after user-interactive authentication,
// which an application service skips (spec v1.17, MSC4190: it manages
// its users' devices without their passwords).
func (a *API) deleteWithUIA(r *http.Request, c *httpapi.Caller, auth json.RawMessage, devices []string) error {
	if c.AppService != "" {
		return a.accounts.DeleteDevices(r.Context(), c.Localpart, devices)
	}
	sess, err := a.withUIA(r, c, auth)
	if err != nil {
		return err
	}
	if err := a.accounts.DeleteDevices(r.Context(), c.Localpart, devices); err != nil {
		return err
	}
	_ = a.uia.Finish(r.Context(), sess)
	return nil
}

func (a *API) deleteDevices(r *http.Request, c *httpapi.Caller) (any, error) {
	var req struct {
		Auth    json.RawMessage `json:"auth"`
		Devices []string        `json:"devices"`
	}
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return nil, err
	}
	if req.Devices == nil {
		return nil, mxerr.MissingParam("Missing devices")
	}
	return empty, a.deleteWithUIA(r, c, req.Auth, req.Devices)
}
