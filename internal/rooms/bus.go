package rooms

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
)

// TopicEvent is the topic under which the engine publishes a
// Notification, once an event is persisted and has its stream position:
// /sync waiters, push, the search indexer, the guest enforcer and
// federation's presence-on-join listen to it.
const TopicEvent = "rooms.event"

// Topic implements bus.Change.
func (Notification) Topic() string { return TopicEvent }

// notificationJSON is a Notification as it travels between processes:
// the event's JSON in its room version, with the engine's bookkeeping.
// A listener in another process gets an Event equal to the publisher's.
type notificationJSON struct {
	RoomVersion    string          `json:"room_version"`
	Event          json.RawMessage `json:"event"`
	EventID        string          `json:"event_id"`
	NID            int64           `json:"nid"`
	StreamPos      int64           `json:"stream_pos"`
	StateBefore    int64           `json:"state_before,omitempty"`
	StateAfter     int64           `json:"state_after,omitempty"`
	Status         int             `json:"status,omitempty"`
	ReplacesNID    int64           `json:"replaces_nid,omitempty"`
	HasURL         bool            `json:"has_url,omitempty"`
	RedactedBy     string          `json:"redacted_by,omitempty"`
	TxnLocalpart   string          `json:"txn_localpart,omitempty"`
	TxnDevice      string          `json:"txn_device,omitempty"`
	TxnID          string          `json:"txn_id,omitempty"`
	Membership     string          `json:"membership,omitempty"`
	PrevMembership string          `json:"prev_membership,omitempty"`
}

// MarshalJSON implements json.Marshaler: a Notification carries a
// parsed event, which a bus between processes sends as its JSON.
func (n Notification) MarshalJSON() ([]byte, error) {
	if n.Event == nil {
		return nil, errors.New("rooms: notification without an event")
	}
	ev := n.Event
	return json.Marshal(notificationJSON{
		RoomVersion: string(ev.Version()), Event: ev.JSON(), EventID: ev.EventID(),
		NID: ev.NID, StreamPos: ev.StreamPos, StateBefore: ev.StateBefore, StateAfter: ev.StateAfter,
		Status: int(ev.Status), ReplacesNID: ev.ReplacesNID, HasURL: ev.HasURL, RedactedBy: ev.RedactedBy,
		TxnLocalpart: ev.TxnLocalpart, TxnDevice: ev.TxnDevice, TxnID: ev.TxnID,
		Membership: n.Membership, PrevMembership: n.PrevMembership,
	})
}

// UnmarshalJSON implements json.Unmarshaler. The event was checked when
// it was stored; a redacted event travels in its redacted form.
func (n *Notification) UnmarshalJSON(raw []byte) error {
	var j notificationJSON
	if err := json.Unmarshal(raw, &j); err != nil {
		return err
	}
	v, err := gomatrixserverlib.GetRoomVersion(gomatrixserverlib.RoomVersion(j.RoomVersion))
	if err != nil {
		return fmt.Errorf("rooms: notification: %w", err)
	}
	pdu, err := v.NewEventFromTrustedJSONWithEventID(j.EventID, j.Event, j.RedactedBy != "")
	if err != nil {
		return fmt.Errorf("rooms: notification: %w", err)
	}
	ev := &Event{PDU: pdu, NID: j.NID, StreamPos: j.StreamPos, StateBefore: j.StateBefore, StateAfter: j.StateAfter,
		ReplacesNID: j.ReplacesNID, HasURL: j.HasURL, RedactedBy: j.RedactedBy,
		Status: roommodel.Status(j.Status), TxnLocalpart: j.TxnLocalpart, TxnDevice: j.TxnDevice, TxnID: j.TxnID}
	*n = Notification{Event: ev.derive(), Membership: j.Membership, PrevMembership: j.PrevMembership}
	return nil
}
