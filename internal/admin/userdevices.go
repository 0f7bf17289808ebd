package admin

import (
	"context"
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

// CrossSigning is what the users API needs of the keys service.
type CrossSigning interface {
	// AllowCrossSigningReplacement lets the user replace their
	// cross-signing keys without UIA for a while; it answers until when
	// (milliseconds).
	AllowCrossSigningReplacement(ctx context.Context, userID string) (int64, error)
}

// allowCrossSigningReplacement is POST
// .../users/{userId}/_allow_cross_signing_replacement_without_uia:
// answers {"updatable_without_uia_before_ms"}, as Synapse; 404 when the
// user has no master key.
func (u *Users) allowCrossSigningReplacement(r *http.Request, _ *httpapi.Caller) (any, error) {
	usr, err := u.user(r, "Only local users can be modified")
	if err != nil {
		return nil, err
	}
	until, err := u.crossSigning.AllowCrossSigningReplacement(r.Context(), usr.UserID)
	if err != nil {
		return nil, err
	}
	return map[string]any{"updatable_without_uia_before_ms": until}, nil
}
