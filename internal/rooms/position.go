package rooms

import (
	"context"
	"errors"

	"github.com/myelin-chat/myelin/internal/store"
)

// LastEventID is the ID of a room's last accepted event at or before
// stream position pos; "" when the room has none.
func (e *Engine) LastEventID(ctx context.Context, roomID string, pos int64) (string, error) {
	ev, err := e.store.LastEventAtOrBefore(ctx, roomID, pos)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	return ev.EventID, err
}

// StateAtPos is a room's state after its last accepted event at or
// before stream position pos; ok is false when the room had no event by
// then.
func (e *Engine) StateAtPos(ctx context.Context, roomID string, pos int64) (state StateMap, ok bool, err error) {
	ev, err := e.store.LastEventAtOrBefore(ctx, roomID, pos)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	state, err = e.StateAt(ctx, ev.StateAfter)
	return state, err == nil, err
}
