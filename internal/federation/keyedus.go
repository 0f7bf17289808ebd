package federation

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/keys"
)

// ConnectKeys joins the end-to-end encryption service to federation:
// the EDUs other servers send about their users' devices and to-device
// messages go to it, and its changes to local users' devices, cross-
// signing keys and messages for remote devices go out as EDUs.
func (a *API) ConnectKeys(k *keys.Service) {
	handle := func(eduType string, h func(context.Context, string, json.RawMessage) error) {
		a.HandleEDU(eduType, func(ctx context.Context, origin string, content json.RawMessage) {
			if err := h(ctx, origin, content); err != nil {
				a.d.Log.Info("EDU refused", "type", eduType, "origin", origin, "err", err)
			}
		})
	}
	handle("m.direct_to_device", k.HandleDirectToDevice)
	handle("m.device_list_update", k.HandleDeviceListUpdate)
	handle("m.signing_key_update", k.HandleSigningKeyUpdate)
	if a.d.Sender == nil {
		return
	}
}

// subscribeKeyEDUs sends local users' device and cross-signing key
// changes, as the keys service publishes them, to the servers sharing a
// room with the user.
func (a *API) subscribeKeyEDUs(b bus.Bus, k UserKeys) {
	b.Subscribe("federation.device_list", func(ctx context.Context, c bus.Change) {
		d := c.(keys.DeviceUpdate)
		a.queueForRoommates(ctx, d.UserID, "m.device_list_update", deviceListUpdate(ctx, k, d))
	}, keys.TopicDevice)
	b.Subscribe("federation.signing_keys", func(ctx context.Context, c bus.Change) {
		userID := c.(keys.CrossSigningUpdate).UserID
		q, err := k.QueryLocal(ctx, map[string][]string{userID: {}})
		if err != nil {
			return
		}
		content := map[string]any{"user_id": userID}
		if m, ok := q.MasterKeys[userID]; ok {
			content["master_key"] = m
		}
		if s, ok := q.SelfSigningKeys[userID]; ok {
			content["self_signing_key"] = s
		}
		a.queueForRoommates(ctx, userID, "m.signing_key_update", content)
	}, keys.TopicCrossSigning)
}

// queueForRoommates sends an EDU about a local user to every other
// server with a member in a room the user is joined to.
func (a *API) queueForRoommates(ctx context.Context, userID, eduType string, content any) {
	rooms, err := a.d.Store.MembershipsOf(ctx, userID, spec.Join)
	if err != nil {
		a.d.Log.Warn("EDU destinations", "type", eduType, "err", err)
		return
	}
	seen := map[string]bool{a.d.ServerName: true}
	var dests []string
	for _, r := range rooms {
		servers, err := a.d.Store.JoinedServers(ctx, r.RoomID)
		if err != nil {
			a.d.Log.Warn("EDU destinations", "type", eduType, "err", err)
			return
		}
		for _, s := range servers {
			if !seen[s] {
				seen[s] = true
				dests = append(dests, s)
			}
		}
	}
	if len(dests) == 0 {
		return
	}
	if err := a.d.Sender.QueueEDU(ctx, dests, eduType, content); err != nil {
		a.d.Log.Warn("queueing an EDU", "type", eduType, "err", err)
	}
}

// DirectToDevice is the keys service's way to send to-device messages to
// another server's users: an m.direct_to_device EDU through the sender
// (keys.Options.RemoteToDevice).
func DirectToDevice(sender *Sender) func(ctx context.Context, from, destination, eventType string, messages map[string]map[string]json.RawMessage) error {
	return func(ctx context.Context, from, destination, eventType string, messages map[string]map[string]json.RawMessage) error {
		return sender.QueueEDU(ctx, []string{destination}, "m.direct_to_device", map[string]any{
			"sender": from, "type": eventType, "message_id": randomMessageID(), "messages": messages,
		})
	}
}

func randomMessageID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
