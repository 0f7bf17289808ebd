package accounts

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"unicode/utf8"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/store"
)

// Devices lists a user's devices.
func (s *Service) Devices(ctx context.Context, localpart string) ([]Device, error) {
	rows, err := s.store.ListDevices(ctx, localpart)
	if err != nil {
		return nil, err
	}
	devices := make([]Device, len(rows))
	for i, d := range rows {
		devices[i] = Device(d)
	}
	return devices, nil
}

// Device loads one device; M_NOT_FOUND if the user has no such device.
func (s *Service) Device(ctx context.Context, localpart, deviceID string) (Device, error) {
	d, err := s.store.GetDevice(ctx, localpart, deviceID)
	if errors.Is(err, store.ErrNotFound) {
		return Device(d), mxerr.NotFound("Device not found")
	}
	return Device(d), err
}

// maxDeviceDisplayName is Synapse's MAX_DEVICE_DISPLAY_NAME_LEN, in
// characters.
const maxDeviceDisplayName = 100

// CheckDeviceDisplayName bounds a device's display name, which every
// user sharing an encrypted room sees in device lists: over 100
// characters is 400 M_TOO_LARGE, as Synapse answers.
func CheckDeviceDisplayName(name *string) error {
	if name != nil && utf8.RuneCountInString(*name) > maxDeviceDisplayName {
		return &mxerr.Error{Status: http.StatusBadRequest, Code: "M_TOO_LARGE",
			Message: fmt.Sprintf("Device display name is longer than %d characters", maxDeviceDisplayName)}
	}
	return nil
}

// RenameDevice sets a device's display name.
func (s *Service) RenameDevice(ctx context.Context, localpart, deviceID string, name *string) error {
	if err := CheckDeviceDisplayName(name); err != nil {
		return err
	}
	err := s.store.SetDeviceDisplayName(ctx, localpart, deviceID, name)
	if errors.Is(err, store.ErrNotFound) {
		return mxerr.NotFound("Device not found")
	}
	if err != nil || s.opts.DeviceRenamed == nil {
		return err
	}
	return s.opts.DeviceRenamed(ctx, s.UserID(localpart), deviceID)
}

// DeleteDevices removes devices, logging them out. Unknown device IDs are
// ignored, as the spec's /delete_devices allows.
func (s *Service) DeleteDevices(ctx context.Context, localpart string, deviceIDs []string) error {
	err := s.store.DeleteDevices(ctx, localpart, deviceIDs)
	s.tokens.invalidate(localpart)
	if err != nil {
		return err
	}
	return s.removed(ctx, localpart, deviceIDs)
}
