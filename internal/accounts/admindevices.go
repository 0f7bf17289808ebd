package accounts

import (
	"context"

	"github.com/myelin-chat/myelin/internal/ident"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// CreateDevice registers a device for a user without logging it in
// (Synapse's admin POST /_synapse/admin/v2/users/{userId}/devices, used
// by bridges and tools that then hand the device an access token of
// their own); a device the user has already is left as it is, as
// Synapse's check_device_registered. The device has no keys, so no
// device list changes until a client uploads them.
func (a *Admin) CreateDevice(ctx context.Context, localpart, deviceID string) error {
	if deviceID == "" || len(deviceID) > 255 || ident.CheckText(deviceID) != nil {
		return mxerr.InvalidParam("device_id must be a non-empty string of at most 255 bytes")
	}
	_, err := a.store.CreateDevice(ctx, localpart, deviceID, a.acc.now().UnixMilli())
	return err
}
