package keys

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/store"
)

// Message is a to-device message as /sync delivers it.
type Message struct {
	// Pos is the message's position in its device's inbox.
	Pos     int64           `json:"-"`
	Sender  string          `json:"sender"`
	Type    string          `json:"type"`
	Content json.RawMessage `json:"content"`
}

// SendToDevice queues messages for devices ("*": every device of the
// user). txnID makes the request idempotent per sending device, as
// /sendToDevice/{eventType}/{txnId} requires. Other servers' users'
// messages go to RemoteToDevice, one call per server.
func (s *Service) SendToDevice(ctx context.Context, sender, senderDevice, eventType, txnID string, messages map[string]map[string]json.RawMessage) error {
	var queue []store.ToDeviceMessage
	remote := map[string]map[string]map[string]json.RawMessage{}
	for user, devices := range messages {
		if !s.IsLocal(user) {
			server := serverOf(user)
			if server == "" {
				return mxerr.InvalidParam("Invalid user ID %q", user)
			}
			if remote[server] == nil {
				remote[server] = map[string]map[string]json.RawMessage{}
			}
			remote[server][user] = devices
			continue
		}
		msgs, err := s.localMessages(ctx, sender, eventType, user, devices)
		if err != nil {
			return err
		}
		queue = append(queue, msgs...)
	}
	dup, err := s.store.QueueToDevice(ctx, sender, senderDevice, txnID, s.now().UnixMilli(), queue)
	if err != nil || dup {
		return err
	}
	s.wakeRecipients(queue)
	for server, msgs := range remote {
		if s.RemoteToDevice == nil {
			s.log.Warn("keys: to-device messages for another server dropped: no federation sender", "server", server)
			continue
		}
		if err := s.RemoteToDevice(ctx, sender, server, eventType, msgs); err != nil {
			return err
		}
	}
	return nil
}

// localMessages expands one local user's messages to their devices.
// Messages for devices the user does not have are dropped, as Synapse
// does.
func (s *Service) localMessages(ctx context.Context, sender, eventType, user string, devices map[string]json.RawMessage) ([]store.ToDeviceMessage, error) {
	list, err := s.store.ListDevices(ctx, localpartOf(user))
	if err != nil {
		return nil, err
	}
	var out []store.ToDeviceMessage
	for device, content := range devices {
		var obj map[string]json.RawMessage
		if json.Unmarshal(content, &obj) != nil {
			return nil, mxerr.BadJSON("Message content for %s %s must be an object", user, device)
		}
		for _, d := range list {
			if device == "*" || device == d.DeviceID {
				out = append(out, store.ToDeviceMessage{UserID: user, DeviceID: d.DeviceID, Sender: sender, Type: eventType, Content: string(content)})
			}
		}
	}
	return out, nil
}

func (s *Service) wakeRecipients(msgs []store.ToDeviceMessage) {
	seen := map[string]bool{}
	for _, m := range msgs {
		if !seen[m.UserID] {
			seen[m.UserID] = true
			s.wake(m.UserID)
		}
	}
}

// ToDeviceMessages returns up to limit messages waiting for a device
// after inbox position since, and the position to put in the next sync
// token (since itself when there are none).
func (s *Service) ToDeviceMessages(ctx context.Context, userID, deviceID string, since int64, limit int) ([]Message, int64, error) {
	rows, err := s.store.ToDeviceMessages(ctx, userID, deviceID, since, limit)
	if err != nil {
		return nil, since, err
	}
	out := make([]Message, len(rows))
	next := since
	for i, r := range rows {
		out[i] = Message{Pos: r.ID, Sender: r.Sender, Type: r.Type, Content: json.RawMessage(r.Content)}
		next = r.ID
	}
	return out, next, nil
}

// Ack deletes a device's messages up to inbox position upTo: the device
// synced with a token past them, so it has them.
func (s *Service) Ack(ctx context.Context, userID, deviceID string, upTo int64) error {
	if upTo <= 0 {
		return nil
	}
	return s.store.DeleteToDeviceMessages(ctx, userID, deviceID, upTo)
}

// directToDevice is the m.direct_to_device EDU's content.
type directToDevice struct {
	Sender    string                                `json:"sender"`
	Type      string                                `json:"type"`
	MessageID string                                `json:"message_id"`
	Messages  map[string]map[string]json.RawMessage `json:"messages"`
}

// HandleDirectToDevice takes an m.direct_to_device EDU from origin:
// messages from one of origin's users to local devices, deduplicated by
// message_id.
func (s *Service) HandleDirectToDevice(ctx context.Context, origin string, content json.RawMessage) error {
	var edu directToDevice
	if err := json.Unmarshal(content, &edu); err != nil {
		return mxerr.BadJSON("m.direct_to_device: %v", err)
	}
	if serverOf(edu.Sender) != origin {
		return mxerr.Forbidden("m.direct_to_device from %s for a sender of another server", origin)
	}
	if edu.Type == "" || edu.MessageID == "" {
		return mxerr.MissingParam("m.direct_to_device needs type and message_id")
	}
	var queue []store.ToDeviceMessage
	for user, devices := range edu.Messages {
		if !s.IsLocal(user) {
			continue
		}
		msgs, err := s.localMessages(ctx, edu.Sender, edu.Type, user, devices)
		if err != nil {
			return err
		}
		queue = append(queue, msgs...)
	}
	// The sending server's message_id plays the part of a transaction ID.
	dup, err := s.store.QueueToDevice(ctx, edu.Sender, "federation:"+origin, edu.MessageID, s.now().UnixMilli(), queue)
	if err != nil || dup {
		return err
	}
	s.wakeRecipients(queue)
	return nil
}

// DevicesRemoved drops what belonged to deleted devices of a local user
// (all of them when deviceIDs is nil): their keys, signatures and
// waiting to-device messages. It is the accounts service's device
// removal hook.
func (s *Service) DevicesRemoved(ctx context.Context, userID string, deviceIDs []string) error {
	if deviceIDs != nil && len(deviceIDs) == 0 {
		return nil
	}
	pos, err := s.atNewPosition(func(pos int64) (bool, error) {
		return true, s.store.DeleteDeviceE2E(ctx, userID, deviceIDs, pos)
	})
	if err != nil {
		return err
	}
	s.deviceListChanged(ctx, userID)
	if s.DeviceChanged != nil {
		for _, d := range deviceIDs {
			s.DeviceChanged(ctx, userID, d, true, pos)
		}
	}
	return nil
}

var errBadUpdate = errors.New("keys: update for a user of another server")

func checkOrigin(origin, userID string) error {
	if !strings.HasPrefix(userID, "@") || serverOf(userID) != origin {
		return mxerr.Forbidden("%v: %s from %s", errBadUpdate, userID, origin)
	}
	return nil
}
