package rooms

import (
	"bytes"
	"context"
	"encoding/json"
)

// SetState sends a state event unless it would change nothing: as in
// Synapse, setting a state entry to the content it already has, by the
// same sender, returns the existing event instead of a new one.
func (e *Engine) SetState(ctx context.Context, roomID, sender, typ, stateKey string, content json.RawMessage) (*Event, error) {
	return e.SetStateAt(ctx, roomID, sender, typ, stateKey, content, 0)
}

// SetStateAt is SetState with the event's origin_server_ts given (ms;
// 0 for now), for application services' bridged timestamps.
func (e *Engine) SetStateAt(ctx context.Context, roomID, sender, typ, stateKey string, content json.RawMessage, ts int64) (*Event, error) {
	if state, err := e.CurrentState(ctx, roomID); err == nil {
		if cur, err := e.StateEvent(ctx, state, typ, stateKey); err == nil && cur != nil &&
			cur.Sender() == sender && jsonEqual(cur.Content(), content) {
			return cur, nil
		}
	}
	return e.Send(ctx, SendRequest{RoomID: roomID, Sender: sender, Type: typ, StateKey: &stateKey, Content: content, OriginTS: ts})
}

// jsonEqual compares two JSON documents by value, ignoring key order and
// spacing.
func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}
