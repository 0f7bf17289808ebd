package federation

import (
	"context"
	"encoding/json"
)

// handleKeyEDUs gives the end-to-end encryption service the EDUs other
// servers send about their users' devices and to-device messages (its
// changes to local users' devices go out through the remote package).
func (a *API) handleKeyEDUs(k UserKeys) {
	handle := func(eduType string, h func(context.Context, string, json.RawMessage) error) {
		a.handleEDU(eduType, func(ctx context.Context, origin string, content json.RawMessage) {
			if err := h(ctx, origin, content); err != nil {
				a.d.Log.Info("EDU refused", "type", eduType, "origin", origin, "err", err)
			}
		})
	}
	handle("m.direct_to_device", k.HandleDirectToDevice)
	handle("m.device_list_update", k.HandleDeviceListUpdate)
	handle("m.signing_key_update", k.HandleSigningKeyUpdate)
}
