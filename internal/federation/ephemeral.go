package federation

import (
	"context"
	"encoding/json"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/receipts"
)

// Typing notifications and read receipts from other servers (m.typing
// and m.receipt EDUs); local ones go out through the remote package.

// RemoteTyping takes other servers' typing notifications (the typing
// service).
type RemoteTyping interface {
	SetRemote(roomID, userID string, typing bool)
}

// RemoteReceipts takes other servers' read receipts (the receipts
// service).
type RemoteReceipts interface {
	PutRemote(ctx context.Context, roomID, userID, eventID, threadID string, ts int64) error
}

// handleTyping takes other servers' typing notifications.
func (a *API) handleTyping(t RemoteTyping) {
	a.handleEDU("m.typing", func(ctx context.Context, origin string, content json.RawMessage) {
		var edu struct {
			RoomID string `json:"room_id"`
			UserID string `json:"user_id"`
			Typing bool   `json:"typing"`
		}
		if json.Unmarshal(content, &edu) != nil || !a.remoteMemberOf(ctx, origin, edu.RoomID, edu.UserID) {
			return
		}
		t.SetRemote(edu.RoomID, edu.UserID, edu.Typing)
	})
}

// handleReceipts takes other servers' public read receipts.
func (a *API) handleReceipts(r RemoteReceipts) {
	a.handleEDU("m.receipt", func(ctx context.Context, origin string, content json.RawMessage) {
		var edu map[string]map[string]map[string]struct {
			EventIDs []string `json:"event_ids"`
			Data     struct {
				TS       int64  `json:"ts"`
				ThreadID string `json:"thread_id"`
			} `json:"data"`
		}
		if json.Unmarshal(content, &edu) != nil {
			return
		}
		for roomID, byType := range edu {
			for userID, rec := range byType[receipts.Read] {
				if len(rec.EventIDs) == 0 || !a.remoteMemberOf(ctx, origin, roomID, userID) {
					continue
				}
				if err := r.PutRemote(ctx, roomID, userID, rec.EventIDs[len(rec.EventIDs)-1], rec.Data.ThreadID, rec.Data.TS); err != nil {
					a.d.Log.Info("receipt EDU", "room_id", roomID, "user_id", userID, "err", err)
				}
			}
		}
	})
}

// remoteMemberOf checks an EDU about a user in a room: the user belongs
// to the sending server, the room's ACL admits it (spec v1.13, MSC4163:
// room-scoped EDUs of a denied server are ignored, as Synapse's
// check_server_matches_acl does; presence, device lists and to-device
// messages are not room-scoped and not subject to ACLs), and the user is
// joined to the room here.
func (a *API) remoteMemberOf(ctx context.Context, origin, roomID, userID string) bool {
	uid, err := spec.NewUserID(userID, true)
	if err != nil || string(uid.Domain()) != origin {
		return false
	}
	if ok, err := a.d.Rooms.ServerAllowed(ctx, roomID, origin); err != nil || !ok {
		return false
	}
	m, err := a.d.Rooms.MembershipOf(ctx, roomID, userID)
	return err == nil && m == spec.Join
}
