package federation

import (
	"context"
	"encoding/json"

	"github.com/myelin-chat/myelin/internal/presence"
)

// ConnectPresence joins the presence service to federation: m.presence
// EDUs from other servers go to it, and its local users' changes go out
// as m.presence EDUs to every server sharing a room with the user.
func (a *API) ConnectPresence(p *presence.Service) {
	a.HandleEDU("m.presence", func(ctx context.Context, origin string, content json.RawMessage) {
		if err := p.HandleEDU(ctx, origin, content); err != nil {
			a.d.Log.Info("EDU refused", "type", "m.presence", "origin", origin, "err", err)
		}
	})
	if a.d.Sender == nil || !p.Enabled() {
		// Synapse with use_presence: false sends no presence.
		return
	}
	p.Federate = func(ctx context.Context, push presence.Push) {
		a.queueForRoommates(ctx, push.UserID, "m.presence", map[string]any{"push": []presence.Push{push}})
	}
}
