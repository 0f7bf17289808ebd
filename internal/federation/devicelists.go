package federation

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
func deviceListUpdate(ctx context.Context, k UserKeys, d keys.DeviceUpdate) map[string]any {
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
	content["keys"] = dk
	var withName struct {
		Unsigned struct {
			Name *string `json:"device_display_name"`
		} `json:"unsigned"`
	}
	if json.Unmarshal(dk, &withName) == nil && withName.Unsigned.Name != nil {
		content["device_display_name"] = *withName.Unsigned.Name
	}
	return content
}
