package accounts

import (
	"context"

	"github.com/myelin-chat/myelin/internal/ident"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// PutDevice is an application service's PUT /devices/{deviceId} for
// one of its users (spec v1.17, MSC4190): the device is created when
// the user does not have it, with no access token (the service acts
// with its as_token and ?device_id=), and named. created reports
// whether it is new (201 rather than 200).
func (s *Service) PutDevice(ctx context.Context, localpart, deviceID string, displayName *string) (created bool, err error) {
	if deviceID == "" || len(deviceID) > 255 || ident.CheckText(deviceID) != nil {
		return false, mxerr.InvalidParam("device_id must be a non-empty string of at most 255 bytes")
	}
	if err := CheckDeviceDisplayName(displayName); err != nil {
		return false, err
	}
	created, err = s.store.CreateDevice(ctx, localpart, deviceID, s.now().UnixMilli())
	if err != nil {
		return false, err
	}
	if displayName != nil {
		err = s.RenameDevice(ctx, localpart, deviceID, displayName)
	}
	return created, err
}
