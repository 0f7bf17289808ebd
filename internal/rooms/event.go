package rooms

import (
	"encoding/json"
	"fmt"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/ident"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
	"github.com/myelin-chat/myelin/internal/store"
)

// Event is a room event with the server's bookkeeping about it. Events
// are shared through the cache and never mutated once built.
type Event struct {
	gomatrixserverlib.PDU
	NID         int64
	StreamPos   int64
	StateBefore int64
	StateAfter  int64
	Status      roommodel.Status
	ReplacesNID int64
	// HasURL is the contains_url filter's test, worked out once when the
	// event is stored rather than on every filtered read.
	HasURL bool
	// RedactedBy is the redaction that applies to the event; the PDU is
	// then already in its redacted form.
	RedactedBy string
	// Txn* identify the request that sent the event, so that its sender's
	// device can recognise its own echo (unsigned.transaction_id).
	TxnLocalpart, TxnDevice, TxnID string

	// membership and historyVisibility are read from the content once,
	// when the event is built (see derive): visibility checks ask for
	// them for every event shown to every user, and parsing the content
	// each time was a tenth of a woken /sync.
	membership        string
	historyVisibility gomatrixserverlib.HistoryVisibility
}

// derive fills in the fields read from the content. Both survive
// redaction (the redaction algorithm keeps membership and
// history_visibility), so a redacted copy keeps them.
func (e *Event) derive() *Event {
	switch e.Type() {
	case spec.MRoomMember:
		e.membership, _ = e.PDU.Membership()
	case spec.MRoomHistoryVisibility:
		e.historyVisibility, _ = e.PDU.HistoryVisibility()
	}
	return e
}

// Membership is the membership of an m.room.member event.
func (e *Event) Membership() (string, error) {
	if e.membership != "" {
		return e.membership, nil
	}
	return e.PDU.Membership()
}

// HistoryVisibility is the visibility an m.room.history_visibility event sets.
func (e *Event) HistoryVisibility() (gomatrixserverlib.HistoryVisibility, error) {
	if e.historyVisibility != "" {
		return e.historyVisibility, nil
	}
	return e.PDU.HistoryVisibility()
}

// HasState reports whether the engine knows the state around the event.
// Events known only from another server's state or auth chain
// (outliers) and out-of-band invites do not: they can be neither prev
// events to build on nor a place to start visibility checks from.
func (e *Event) HasState() bool { return e.StateAfter != 0 }

// IsState reports whether the event is a state event.
func (e *Event) IsState() bool { return e.StateKey() != nil }

// Sender is the sender's user ID (rooms here never use pseudo IDs).
func (e *Event) Sender() string { return string(e.SenderID()) }

// Key is the event's state key tuple; call only on state events.
func (e *Event) Key() roommodel.StateKey {
	return roommodel.StateKey{Type: e.Type(), StateKey: *e.StateKey()}
}

// eventFromRow parses a stored event.
func eventFromRow(r store.EventRow, version gomatrixserverlib.IRoomVersion) (*Event, error) {
	pdu, err := version.NewEventFromTrustedJSONWithEventID(r.EventID, []byte(r.JSON), r.Pruned)
	if err != nil {
		return nil, fmt.Errorf("rooms: stored event %s: %w", r.EventID, err)
	}
	e := &Event{PDU: pdu, NID: r.NID, StreamPos: r.StreamPos, StateBefore: r.StateBefore, StateAfter: r.StateAfter,
		Status: r.Status, ReplacesNID: r.ReplacesNID, HasURL: r.ContainsURL}
	if r.RedactedBy != nil {
		e.RedactedBy = *r.RedactedBy
		if !r.Pruned {
			e.PDU = redactedCopy(pdu, version)
		}
	}
	if r.TxnID != nil && r.TxnDevice != nil && r.TxnLocalpart != nil {
		e.TxnLocalpart, e.TxnDevice, e.TxnID = *r.TxnLocalpart, *r.TxnDevice, *r.TxnID
	}
	return e.derive(), nil
}

// ParsePDU parses an event another server sent, in a room version: the
// one door through which such events come in. gomatrixserverlib parses
// an event whose room_id is no room ID and panics when it is read later
// (PDU.RoomID; PDU.EventID likewise when no reference hash can be
// made), in whatever goroutine reads it, which for a transaction's
// events is not a request's; such an event is refused here instead.
func ParsePDU(v gomatrixserverlib.IRoomVersion, raw []byte) (pdu gomatrixserverlib.PDU, err error) {
	pdu, err = v.NewEventFromUntrustedJSON(raw)
	if err != nil {
		return nil, err
	}
	defer func() {
		if p := recover(); p != nil {
			pdu, err = nil, fmt.Errorf("invalid event: %v", p)
		}
	}()
	_, _ = pdu.RoomID(), pdu.EventID()
	return pdu, nil
}

// redactedCopy applies the room version's redaction algorithm to a copy.
func redactedCopy(pdu gomatrixserverlib.PDU, version gomatrixserverlib.IRoomVersion) gomatrixserverlib.PDU {
	out, err := version.NewEventFromTrustedJSONWithEventID(pdu.EventID(), pdu.JSON(), false)
	if err != nil {
		return pdu
	}
	out.Redact()
	return out
}

// userIDForSender maps sender IDs to user IDs; without pseudo IDs they
// are the same.
func userIDForSender(_ spec.RoomID, senderID spec.SenderID) (*spec.UserID, error) {
	return spec.NewUserID(string(senderID), true)
}

// ContentString reads one top-level string of an event content ("" when
// it is absent or not a string).
func ContentString(content []byte, key string) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(content, &m) != nil {
		return ""
	}
	var s string
	_ = json.Unmarshal(m[key], &s)
	return s
}

// relation is the m.relates_to of an event's content.
type relation struct {
	EventID string `json:"event_id"`
	RelType string `json:"rel_type"`
}

func relationOf(pdu gomatrixserverlib.PDU) *relation {
	var c struct {
		RelatesTo *relation `json:"m.relates_to"`
	}
	if json.Unmarshal(pdu.Content(), &c) != nil || c.RelatesTo == nil || c.RelatesTo.EventID == "" || c.RelatesTo.RelType == "" {
		return nil
	}
	// Content is the sender's to fill: a target that cannot be an event
	// ID (NUL, too long) relates to nothing, and must not reach the
	// store's relation columns, which PostgreSQL could not index.
	if ident.CheckID(c.RelatesTo.EventID) != nil || ident.CheckID(c.RelatesTo.RelType) != nil {
		return nil
	}
	return c.RelatesTo
}

// ContainsURL reports whether the content has a "url" key, for the
// contains_url filter.
func ContainsURL(pdu gomatrixserverlib.PDU) bool {
	return hasKey(pdu.Content(), "url")
}

// hasKey reports whether raw is a JSON object with the key. Decoding the
// object into a map for it cost nine allocations per stored event; a
// parsed PDU's content is valid JSON, so scanning its top level for the
// key answers the same. A key written with escapes, or anything but an
// object, is decoded as before.
func hasKey(raw []byte, key string) bool {
	if has, sure := scanForKey(raw, key); sure {
		return has
	}
	var c map[string]json.RawMessage
	if json.Unmarshal(raw, &c) != nil {
		return false
	}
	_, ok := c[key]
	return ok
}

// scanForKey looks for a top-level key of a valid JSON object without
// decoding it; sure is false when it cannot tell.
func scanForKey(raw []byte, key string) (has, sure bool) {
	i := 0
	for i < len(raw) && (raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\n' || raw[i] == '\r') {
		i++
	}
	if i == len(raw) || raw[i] != '{' {
		return false, false
	}
	depth, expectKey := 0, false
	for ; i < len(raw); i++ {
		switch c := raw[i]; c {
		case '{', '[':
			depth++
			expectKey = c == '{' && depth == 1
		case '}', ']':
			depth--
		case ',':
			expectKey = depth == 1
		case '"':
			j, escaped := i+1, false
			for ; j < len(raw) && raw[j] != '"'; j++ {
				if raw[j] == '\\' {
					escaped = true
					j++
				}
			}
			if expectKey {
				if escaped {
					return false, false
				}
				if string(raw[i+1:min(j, len(raw))]) == key {
					return true, true
				}
				expectKey = false
			}
			i = j
		}
	}
	return false, true
}

func jsonUnmarshal(raw []byte, v any) error { return json.Unmarshal(raw, v) }
