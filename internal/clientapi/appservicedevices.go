package clientapi

import (
	"context"
	"net/http"

	"github.com/myelin-chat/myelin/internal/ident"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// appServiceDevice is the device an application service's request acts
// with (spec v1.17 "Identity assertion", MSC4326): ?device_id=, or
// MSC3202's unstable org.matrix.msc3202.device_id, which mautrix-go
// sends both of. It must be a device of the user acted as: 400
// M_UNKNOWN_DEVICE otherwise. Without it the request has no device, and
// what needs one (uploading keys) fails as the spec says.
func (a *API) appServiceDevice(ctx context.Context, localpart string, r *http.Request) (string, error) {
	q := r.URL.Query()
	deviceID := q.Get("device_id")
	if deviceID == "" {
		deviceID = q.Get("org.matrix.msc3202.device_id")
	}
	if deviceID == "" {
		return "", nil
	}
	unknown := &mxerr.Error{Status: http.StatusBadRequest, Code: "M_UNKNOWN_DEVICE", Message: "Device " + deviceID + " does not belong to the user"}
	if len(deviceID) > 255 || ident.CheckText(deviceID) != nil {
		// No device has such an ID (and PostgreSQL refuses NUL).
		unknown.Message = "Device does not belong to the user"
		return "", unknown
	}
	if _, err := a.accounts.Device(ctx, localpart, deviceID); err != nil {
		if notFound(err) {
			return "", unknown
		}
		return "", err
	}
	return deviceID, nil
}
