package admin

import (
	"encoding/json"
	"net/http"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// createDevice is POST /_synapse/admin/v2/users/{userId}/devices with
// {"device_id"}: registers the device (kept if it exists) and answers
// 201 {}, as Synapse.
func (u *Users) createDevice(r *http.Request, _ *httpapi.Caller) (any, error) {
	usr, err := u.user(r, "Can only create devices for local users")
	if err != nil {
		return nil, err
	}
	var body struct {
		DeviceID json.RawMessage `json:"device_id"`
	}
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return nil, err
	}
	if body.DeviceID == nil {
		return nil, mxerr.MissingParam("Missing params: ['device_id']")
	}
	var deviceID string
	if json.Unmarshal(body.DeviceID, &deviceID) != nil {
		return nil, mxerr.InvalidParam("device_id must be a string")
	}
	if err := u.admin.CreateDevice(r.Context(), usr.Localpart, deviceID); err != nil {
		return nil, err
	}
	return &httpapi.Response{Status: http.StatusCreated, Body: map[string]any{}}, nil
}
