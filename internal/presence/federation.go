package presence

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/myelin-chat/myelin/internal/store"
)

// HandleEDU takes an m.presence EDU from origin (server-server spec
// "Presence"): each pushed state of one of origin's users replaces what
// this server knew, as Synapse's incoming_presence; entries about other
// servers' users, or malformed, are skipped one by one. With presence
// off it is ignored.
func (s *Service) HandleEDU(ctx context.Context, origin string, raw json.RawMessage) error {
	if !s.o.Enabled {
		return nil
	}
	var edu struct {
		Push []json.RawMessage `json:"push"`
	}
	if err := json.Unmarshal(raw, &edu); err != nil {
		return fmt.Errorf("m.presence: %w", err)
	}
	var errs int
	for _, entry := range edu.Push {
		var u Push
		if err := json.Unmarshal(entry, &u); err != nil || !validState(u.Presence) {
			errs++
			continue
		}
		if s.isLocal(u.UserID) || userServer(u.UserID) != origin {
			// A server speaks for its own users only.
			errs++
			continue
		}
		if max := s.o.MaxStatusMsgBytes; max > 0 && u.StatusMsg != nil && len(*u.StatusMsg) > max {
			// Every local user sharing a room would get it in /sync:
			// the state is kept, the oversized message is not.
			u.StatusMsg = nil
		}
		err := s.apply(ctx, u.UserID, func(p *store.Presence, now int64) {
			p.Presence, p.StatusMsg, p.CurrentlyActive = u.Presence, u.StatusMsg, u.CurrentlyActive
			p.LastFederationUpdateTS = now
			if u.LastActiveAgo != nil {
				p.LastActiveTS = now - max(*u.LastActiveAgo, 0)
			}
		})
		if err != nil {
			return err
		}
	}
	if errs > 0 {
		return fmt.Errorf("m.presence: skipped %d of %d updates (malformed, or not of %s's users)", errs, len(edu.Push), origin)
	}
	return nil
}

func userServer(userID string) string {
	for i := 0; i < len(userID); i++ {
		if userID[i] == ':' {
			return userID[i+1:]
		}
	}
	return ""
}
