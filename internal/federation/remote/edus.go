package remote

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/keys"
	"github.com/myelin-chat/myelin/internal/presence"
	"github.com/myelin-chat/myelin/internal/receipts"
	"github.com/myelin-chat/myelin/internal/typing"
)

// Local users' typing, receipts, presence and device changes, as the
// services publish them on the bus, sent as EDUs to the servers that
// share a room (other servers' EDUs are taken by the inbound package).

// subscribeEDUs sends local users' typing, public read receipts and
// presence, as the services publish them, to the other servers sharing
// a room.
// The EDU is queued even if the publisher's request ends meanwhile.
func (f *Service) subscribeEDUs(b bus.Bus) {
	b.Subscribe("federation.typing", func(ctx context.Context, c bus.Change) {
		t := c.(typing.Local)
		f.queueForRoom(context.WithoutCancel(ctx), t.RoomID, "m.typing", map[string]any{"room_id": t.RoomID, "user_id": t.UserID, "typing": t.Typing})
	}, typing.TopicLocal)
	b.Subscribe("federation.receipts", func(ctx context.Context, c bus.Change) {
		rec := c.(receipts.Local)
		data := map[string]any{"ts": rec.TS}
		if rec.ThreadID != "" {
			data["thread_id"] = rec.ThreadID
		}
		f.queueForRoom(context.WithoutCancel(ctx), rec.RoomID, "m.receipt", map[string]any{rec.RoomID: map[string]any{
			receipts.Read: map[string]any{rec.UserID: map[string]any{"event_ids": []string{rec.EventID}, "data": data}},
		}})
	}, receipts.TopicLocal)
	// Synapse with use_presence: false sends no presence; a disabled
	// presence service publishes none.
	b.Subscribe("federation.presence", func(ctx context.Context, c bus.Change) {
		push := c.(presence.Push)
		f.queueForRoommates(ctx, push.UserID, "m.presence", map[string]any{"push": []presence.Push{push}})
	}, presence.TopicLocal)
}

// queueForRoom sends an EDU to the other servers in a room.
func (f *Service) queueForRoom(ctx context.Context, roomID, eduType string, content any) {
	servers, err := f.joinedServers(ctx, roomID)
	if err != nil {
		f.d.Log.Warn("EDU destinations", "type", eduType, "err", err)
		return
	}
	dests := servers[:0:0]
	for _, s := range servers {
		if s != f.d.ServerName {
			dests = append(dests, s)
		}
	}
	if len(dests) == 0 {
		return
	}
	if err := f.d.Sender.QueueEDU(ctx, dests, eduType, content); err != nil {
		f.d.Log.Warn("queueing an EDU", "type", eduType, "err", err)
	}
}

// subscribeKeyEDUs sends local users' device and cross-signing key
// changes, as the keys service publishes them, to the servers sharing a
// room with the user.
func (f *Service) subscribeKeyEDUs(b bus.Bus, k LocalKeys) {
	b.Subscribe("federation.device_list", func(ctx context.Context, c bus.Change) {
		d := c.(keys.DeviceUpdate)
		f.queueForRoommates(ctx, d.UserID, "m.device_list_update", deviceListUpdate(ctx, k, d))
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
		f.queueForRoommates(ctx, userID, "m.signing_key_update", content)
	}, keys.TopicCrossSigning)
}

// queueForRoommates sends an EDU about a local user to every other
// server with a member in a room the user is joined to.
func (f *Service) queueForRoommates(ctx context.Context, userID, eduType string, content any) {
	rooms, err := f.d.Store.MembershipsOf(ctx, userID, spec.Join)
	if err != nil {
		f.d.Log.Warn("EDU destinations", "type", eduType, "err", err)
		return
	}
	seen := map[string]bool{f.d.ServerName: true}
	var dests []string
	for _, r := range rooms {
		servers, err := f.joinedServers(ctx, r.RoomID)
		if err != nil {
			f.d.Log.Warn("EDU destinations", "type", eduType, "err", err)
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
	if err := f.d.Sender.QueueEDU(ctx, dests, eduType, content); err != nil {
		f.d.Log.Warn("queueing an EDU", "type", eduType, "err", err)
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
