package federation

import (
	"context"
	"encoding/json"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/receipts"
	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/typing"
)

// Typing notifications and read receipts between servers (m.typing and
// m.receipt EDUs).

// ConnectTyping sends local users' typing changes to the other servers
// in the room and takes theirs.
func (a *API) ConnectTyping(t *typing.Service) {
	a.HandleEDU("m.typing", func(ctx context.Context, origin string, content json.RawMessage) {
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
	if a.d.Sender == nil {
		return
	}
	t.OnLocal = func(roomID, userID string, typing bool) {
		a.queueForRoom(context.Background(), roomID, "m.typing",
			map[string]any{"room_id": roomID, "user_id": userID, "typing": typing})
	}
}

// ConnectReceipts sends local users' public read receipts to the other
// servers in the room and takes theirs.
func (a *API) ConnectReceipts(r *receipts.Service) {
	a.HandleEDU("m.receipt", func(ctx context.Context, origin string, content json.RawMessage) {
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
	if a.d.Sender == nil {
		return
	}
	r.OnLocal = func(rec store.Receipt) {
		data := map[string]any{"ts": rec.TS}
		if rec.ThreadID != "" {
			data["thread_id"] = rec.ThreadID
		}
		a.queueForRoom(context.Background(), rec.RoomID, "m.receipt", map[string]any{rec.RoomID: map[string]any{
			receipts.Read: map[string]any{rec.UserID: map[string]any{"event_ids": []string{rec.EventID}, "data": data}},
		}})
	}
}

// remoteMemberOf checks an EDU about a user in a room: the user belongs
// to the sending server, the room's ACL admits it, and the user is
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

// queueForRoom sends an EDU to the other servers in a room.
func (a *API) queueForRoom(ctx context.Context, roomID, eduType string, content any) {
	servers, err := a.d.Store.JoinedServers(ctx, roomID)
	if err != nil {
		a.d.Log.Warn("EDU destinations", "type", eduType, "err", err)
		return
	}
	dests := servers[:0:0]
	for _, s := range servers {
		if s != a.d.ServerName {
			dests = append(dests, s)
		}
	}
	if len(dests) == 0 {
		return
	}
	if err := a.d.Sender.QueueEDU(ctx, dests, eduType, content); err != nil {
		a.d.Log.Warn("queueing an EDU", "type", eduType, "err", err)
	}
}
