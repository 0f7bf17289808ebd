// Package clientevent renders room events in the client-server API's
// formats: the full client event of timelines and /event, and the
// stripped state of invites and knocks.
package clientevent

import (
	"encoding/json"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/rooms"
)

// Event is the ClientEvent of the spec.
type Event struct {
	Content        json.RawMessage `json:"content"`
	EventID        string          `json:"event_id"`
	OriginServerTS int64           `json:"origin_server_ts"`
	RoomID         string          `json:"room_id,omitempty"`
	Sender         string          `json:"sender"`
	StateKey       *string         `json:"state_key,omitempty"`
	Type           string          `json:"type"`
	Redacts        string          `json:"redacts,omitempty"`
	Unsigned       Unsigned        `json:"unsigned"`
}

// Unsigned is a client event's unsigned object. A struct, not a map:
// every event of every response has one, and a map cost an allocation
// of some 300 bytes per rendered event (issue 20).
type Unsigned struct {
	Age           int64  `json:"age"`
	TransactionID string `json:"transaction_id,omitempty"`
	// PrevContent, PrevSender and ReplacesState describe the state
	// event this one replaced.
	PrevContent   json.RawMessage `json:"prev_content,omitempty"`
	PrevSender    string          `json:"prev_sender,omitempty"`
	ReplacesState string          `json:"replaces_state,omitempty"`
	// Membership is the viewer's membership after the event (MSC4115).
	Membership      string         `json:"membership,omitempty"`
	RedactedBecause *Event         `json:"redacted_because,omitempty"`
	Relations       map[string]any `json:"m.relations,omitempty"`
	// FilteredBy is FilteredByKey: the feeds of the viewer's own
	// reputation filter that hide the event.
	FilteredBy []string `json:"org.myelin.filtered_by,omitempty"`
}

// Viewer is who an event is rendered for: their own events carry the
// transaction ID of the request that sent them.
type Viewer struct {
	Localpart string
	DeviceID  string
}

// Options add the fields that need more than the event itself.
type Options struct {
	Viewer Viewer
	// PrevContent is the content of the state event this one replaced.
	PrevContent json.RawMessage
	PrevSender  string
	// ReplacesState is the event ID of the replaced state event.
	ReplacesState string
	// RedactedBecause is the redaction, already rendered.
	RedactedBecause *Event
	// Relations is unsigned.m.relations.
	Relations map[string]any
	// Membership is the viewer's membership after the event
	// (unsigned.membership); empty leaves it out.
	Membership string
	// OmitRoomID drops room_id, as /sync's timelines do.
	OmitRoomID bool
	Now        time.Time
}

// Format renders ev.
func Format(ev *rooms.Event, o Options) Event {
	out := Event{
		Content: json.RawMessage(ev.Content()), EventID: ev.EventID(), OriginServerTS: int64(ev.OriginServerTS()),
		RoomID: ev.RoomID().String(), Sender: ev.Sender(), StateKey: ev.StateKey(), Type: ev.Type(),
	}
	if o.OmitRoomID {
		out.RoomID = ""
	}
	if len(out.Content) == 0 {
		out.Content = json.RawMessage("{}")
	}
	if ev.Type() == spec.MRoomRedaction {
		out.Redacts = ev.Redacts()
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	u := Unsigned{Age: max(0, now.UnixMilli()-int64(ev.OriginServerTS())), Membership: o.Membership,
		ReplacesState: o.ReplacesState, RedactedBecause: o.RedactedBecause}
	if ev.TxnID != "" && ev.TxnLocalpart == o.Viewer.Localpart && ev.TxnDevice == o.Viewer.DeviceID && o.Viewer.DeviceID != "" {
		u.TransactionID = ev.TxnID
	}
	if o.PrevContent != nil {
		u.PrevContent = o.PrevContent
		u.PrevSender = o.PrevSender
	}
	if len(o.Relations) > 0 {
		u.Relations = o.Relations
	}
	out.Unsigned = u
	return out
}

// Stripped is a stripped state event (invite_state, knock_state). Full,
// when set, is the whole event, served in place of the four stripped
// fields: the create event is shared in full (MSC4311, spec v1.16), so
// that an invitee can check the room ID against it and read its
// origin_server_ts, as Synapse's strip_event does.
type Stripped struct {
	Content  json.RawMessage `json:"content"`
	Sender   string          `json:"sender"`
	StateKey string          `json:"state_key"`
	Type     string          `json:"type"`
	Full     json.RawMessage `json:"-"`
}

type strippedFields struct {
	Content  json.RawMessage `json:"content"`
	Sender   string          `json:"sender"`
	StateKey string          `json:"state_key"`
	Type     string          `json:"type"`
	TS       *int64          `json:"origin_server_ts,omitempty"`
}

// MarshalJSON serves Full when set, the stripped fields otherwise.
func (s Stripped) MarshalJSON() ([]byte, error) {
	if len(s.Full) > 0 {
		return s.Full, nil
	}
	return json.Marshal(strippedFields{Content: s.Content, Sender: s.Sender, StateKey: s.StateKey, Type: s.Type})
}

// UnmarshalJSON keeps a full create event another server sent (it has an
// origin_server_ts) as Full, so that it is passed on whole.
func (s *Stripped) UnmarshalJSON(raw []byte) error {
	var f strippedFields
	if err := json.Unmarshal(raw, &f); err != nil {
		return err
	}
	*s = Stripped{Content: f.Content, Sender: f.Sender, StateKey: f.StateKey, Type: f.Type}
	if f.Type == spec.MRoomCreate && f.StateKey == "" && f.TS != nil {
		s.Full = append(json.RawMessage(nil), raw...)
	}
	return nil
}

// StrippedTypes are the state events shared with invitees and knockers,
// as Synapse's room_prejoin_state defaults.
var StrippedTypes = []string{
	spec.MRoomCreate, spec.MRoomJoinRules, "m.room.canonical_alias", "m.room.avatar",
	"m.room.encryption", "m.room.name", "m.room.topic",
}

// Strip renders a state event in stripped form; the create event is kept
// whole (see Stripped).
func Strip(ev *rooms.Event) Stripped {
	s := Stripped{Content: json.RawMessage(ev.Content()), Sender: ev.Sender(), StateKey: *ev.StateKey(), Type: ev.Type()}
	if s.Type == spec.MRoomCreate && s.StateKey == "" {
		s.Full = json.RawMessage(ev.JSON())
	}
	return s
}
