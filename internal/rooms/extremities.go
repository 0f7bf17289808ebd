package rooms

import (
	"context"

	"github.com/myelin-chat/myelin/internal/mxerr"
)

// ForwardExtremities returns a room's forward extremities: the events
// without a known child. A server missing events names them as
// earliest_events to /get_missing_events (what it has, where the other
// side stops walking), and a test playing another server builds on them.
func (e *Engine) ForwardExtremities(ctx context.Context, roomID string) ([]string, error) {
	h, err := e.lockRoom(ctx, roomID)
	if err != nil {
		return nil, err
	}
	defer e.unlockRoom(h)
	if h.version == nil {
		return nil, mxerr.NotFound("Unknown room")
	}
	return append([]string(nil), h.extremities...), nil
}
