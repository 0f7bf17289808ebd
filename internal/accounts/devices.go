package accounts

import (
	"context"
	"errors"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/store"
)

// Devices lists a user's devices.
func (s *Service) Devices(ctx context.Context, localpart string) ([]store.Device, error) {
	return s.store.ListDevices(ctx, localpart)
}

// Device loads one device; M_NOT_FOUND if the user has no such device.
func (s *Service) Device(ctx context.Context, localpart, deviceID string) (store.Device, error) {
	d, err := s.store.GetDevice(ctx, localpart, deviceID)
	if errors.Is(err, store.ErrNotFound) {
		return d, mxerr.NotFound("Device not found")
	}
	return d, err
}

// RenameDevice sets a device's display name.
func (s *Service) RenameDevice(ctx context.Context, localpart, deviceID string, name *string) error {
	err := s.store.SetDeviceDisplayName(ctx, localpart, deviceID, name)
	if errors.Is(err, store.ErrNotFound) {
		return mxerr.NotFound("Device not found")
	}
	return err
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
