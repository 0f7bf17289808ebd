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
// user). txnID makes the request idempotent per sending device and
// event type, as /sendToDevice/{eventType}/{txnId} requires: the spec
// scopes a transaction ID to its request path. Other servers' users'
// messages go to Options.RemoteToDevice, one call per server.
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
	dup, err := s.store.QueueToDevice(ctx, sender, senderDevice, eventType, txnID, s.now().UnixMilli(), queue)
	if err != nil || dup {
		return err
	}
	s.wakeRecipients(queue)
	for server, msgs := range remote {
		if s.remoteToDevice == nil {
			s.log.Warn("keys: to-device messages for another server dropped: no federation sender", "server", server)
			continue
		}
		if err := s.remoteToDevice(ctx, sender, server, eventType, msgs); err != nil {
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
	for _, m := range msgs {
		s.messageArrived(m.UserID, m.DeviceID)
	}
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
	key := userID + "|" + deviceID
	s.inboxMu.Lock()
	st, epoch := s.inbox[key], s.inboxEpoch
	s.inboxMu.Unlock()
	if st.emptyKnown && since >= st.emptyAfter {
		return nil, since, nil
	}
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
	if len(rows) < limit {
		// Nothing after next, unless a message arrived since the read
		// began (its arrival bumped the version).
		s.inboxMu.Lock()
		if cur := s.inbox[key]; cur.version == st.version && s.inboxEpoch == epoch {
			cur.emptyKnown, cur.emptyAfter = true, next
			s.putInboxLocked(key, cur)
		}
		s.inboxMu.Unlock()
	}
	return out, next, nil
}

// inboxState is what the service knows of a device's inbox.
type inboxState struct {
	version    int64 // bumped by every new message
	emptyKnown bool  // no message after emptyAfter
	emptyAfter int64
	acked      int64 // messages up to here are deleted
}

// messageArrived forgets what was known of a device's inbox.
func (s *Service) messageArrived(userID, deviceID string) {
	s.inboxMu.Lock()
	defer s.inboxMu.Unlock()
	key := userID + "|" + deviceID
	st := s.inbox[key]
	st.version++
	st.emptyKnown = false
	s.putInboxLocked(key, st)
}

// maxInbox bounds the devices whose inbox state is kept: every device
// that ever synced would otherwise stay, deleted ones too.
const maxInbox = 100_000

// putInboxLocked stores a device's inbox state, first forgetting every
// device's when maxInbox are known (forgetting only costs queries: a
// version of 0 again, acked 0, nothing known empty).
func (s *Service) putInboxLocked(key string, st inboxState) {
	if _, ok := s.inbox[key]; !ok && len(s.inbox) >= maxInbox {
		clear(s.inbox)
		s.inboxEpoch++
	}
	s.inbox[key] = st
}

// Ack deletes a device's messages up to inbox position upTo: the device
// synced with a token past them, so it has them. Repeated acks of the
// same position (every /sync sends its token) cost nothing.
func (s *Service) Ack(ctx context.Context, userID, deviceID string, upTo int64) error {
	if upTo <= 0 {
		return nil
	}
	key := userID + "|" + deviceID
	s.inboxMu.Lock()
	done := s.inbox[key].acked >= upTo
	s.inboxMu.Unlock()
	if done {
		return nil
	}
	if err := s.store.DeleteToDeviceMessages(ctx, userID, deviceID, upTo); err != nil {
		return err
	}
	s.inboxMu.Lock()
	st := s.inbox[key]
	st.acked = max(st.acked, upTo)
	s.putInboxLocked(key, st)
	s.inboxMu.Unlock()
	return nil
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
	// The sending server's message_id plays the part of a transaction ID;
	// it is unique per origin whatever the type (Synapse keys on origin
	// and message_id alone).
	dup, err := s.store.QueueToDevice(ctx, edu.Sender, "federation:"+origin, "", edu.MessageID, s.now().UnixMilli(), queue)
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
	defer s.countsChanged()
	if deviceIDs != nil && len(deviceIDs) == 0 {
		return nil
	}
	prevPos, err := s.store.LastDeviceListPos(ctx, userID)
	if err != nil {
		return err
	}
	pos, err := s.atNewPosition(func(pos int64) (bool, error) {
		return true, s.store.DeleteDeviceE2E(ctx, userID, deviceIDs, pos)
	})
	if err != nil {
		return err
	}
	s.deviceListChanged(ctx, userID)
	// The devices go at one position: the first update follows on from
	// the user's previous change, the others from the first (a server
	// applying them in order ends at pos with every device gone).
	for _, d := range deviceIDs {
		s.bus.Publish(ctx, DeviceUpdate{UserID: userID, DeviceID: d, Deleted: true, StreamID: pos, PrevID: prevPos})
		prevPos = pos
	}
	return nil
}

// DeviceRenamed records that a local device's display name changed: it
// is part of the device list other users' clients show, so it is a
// device-list change, sent to the servers sharing a room with the user
// as Synapse does. It is the accounts service's rename hook.
func (s *Service) DeviceRenamed(ctx context.Context, userID, deviceID string) error {
	prevPos, err := s.store.LastDeviceListPos(ctx, userID)
	if err != nil {
		return err
	}
	pos, err := s.atNewPosition(func(pos int64) (bool, error) {
		return true, s.store.AddDeviceListChange(ctx, pos, userID)
	})
	if err != nil {
		return err
	}
	s.deviceListChanged(ctx, userID)
	s.bus.Publish(ctx, DeviceUpdate{UserID: userID, DeviceID: deviceID, StreamID: pos, PrevID: prevPos})
	return nil
}

var errBadUpdate = errors.New("keys: update for a user of another server")

func checkOrigin(origin, userID string) error {
	if !strings.HasPrefix(userID, "@") || serverOf(userID) != origin {
		return mxerr.Forbidden("%v: %s from %s", errBadUpdate, userID, origin)
	}
	return nil
}
