package remote

import (
	"context"
	"encoding/json"

	"github.com/myelin-chat/myelin/internal/keys"
)

// deviceListUpdate is the m.device_list_update EDU of a local device's
// change (server-server spec "Device Management"): stream_id and prev_id
// chain the user's updates, so that a server whose cached list is at
// prev_id applies the update without asking for the whole list; the
// device's keys and display name go with it, as Synapse sends them.
func deviceListUpdate(ctx context.Context, k LocalKeys, d keys.DeviceUpdate) map[string]any {
	content := map[string]any{"user_id": d.UserID, "device_id": d.DeviceID, "stream_id": d.StreamID,
		"prev_id": []int64{}, "deleted": d.Deleted}
	if d.PrevID > 0 {
		content["prev_id"] = []int64{d.PrevID}
	}
	if d.Deleted {
		return content
	}
	q, err := k.QueryLocal(ctx, map[string][]string{d.UserID: {d.DeviceID}})
	if err != nil {
		return content
	}
	dk, ok := q.DeviceKeys[d.UserID][d.DeviceID]
	if !ok {
		return content
	}
	keys, name := splitDisplayName(dk)
	content["keys"] = keys
	if name != nil {
		content["device_display_name"] = *name
	}
	return content
}

// splitDisplayName takes the unsigned part (the display name a key
// query adds) off a device's keys: an update carries the keys as
// uploaded and the name in device_display_name.
func splitDisplayName(dk json.RawMessage) (json.RawMessage, *string) {
	var obj map[string]json.RawMessage
	if json.Unmarshal(dk, &obj) != nil {
		return dk, nil
	}
	var unsigned struct {
		Name *string `json:"device_display_name"`
	}
	_ = json.Unmarshal(obj["unsigned"], &unsigned)
	delete(obj, "unsigned")
	out, err := json.Marshal(obj)
	if err != nil {
		return dk, unsigned.Name
	}
	return out, unsigned.Name
}
