package federation

import (
	"context"
	"encoding/json"
)

// RemotePresence takes other servers' m.presence EDUs (the presence
// service).
type RemotePresence interface {
	HandleEDU(ctx context.Context, origin string, raw json.RawMessage) error
}

// handlePresence gives the presence service the m.presence EDUs of
// other servers (its local users' changes go out through the remote
// package).
func (a *API) handlePresence(p RemotePresence) {
	a.handleEDU("m.presence", func(ctx context.Context, origin string, content json.RawMessage) {
		if err := p.HandleEDU(ctx, origin, content); err != nil {
			a.d.Log.Info("EDU refused", "type", "m.presence", "origin", origin, "err", err)
		}
	})
}
