package federation

import (
	"context"
	"encoding/json"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/presence"
	"github.com/myelin-chat/myelin/internal/receipts"
	"github.com/myelin-chat/myelin/internal/typing"
)

// Typing notifications and read receipts between servers (m.typing and
// m.receipt EDUs).

// subscribeEDUs sends local users' typing, public read receipts and
// presence, as the services publish them, to the other servers sharing
// a room.
// The EDU is queued even if the publisher's request ends meanwhile.
func (a *API) subscribeEDUs(b bus.Bus) {
	b.Subscribe("federation.typing", func(ctx context.Context, c bus.Change) {
		t := c.(typing.Local)
		a.queueForRoom(context.WithoutCancel(ctx), t.RoomID, "m.typing", map[string]any{"room_id": t.RoomID, "user_id": t.UserID, "typing": t.Typing})
	}, typing.TopicLocal)
	b.Subscribe("federation.receipts", func(ctx context.Context, c bus.Change) {
		rec := c.(receipts.Local)
		data := map[string]any{"ts": rec.TS}
		if rec.ThreadID != "" {
			data["thread_id"] = rec.ThreadID
		}
		a.queueForRoom(context.WithoutCancel(ctx), rec.RoomID, "m.receipt", map[string]any{rec.RoomID: map[string]any{
			receipts.Read: map[string]any{rec.UserID: map[string]any{"event_ids": []string{rec.EventID}, "data": data}},
		}})
	}, receipts.TopicLocal)
	// Synapse with use_presence: false sends no presence; a disabled
	// presence service publishes none.
	b.Subscribe("federation.presence", func(ctx context.Context, c bus.Change) {
		push := c.(presence.Push)
		a.queueForRoommates(ctx, push.UserID, "m.presence", map[string]any{"push": []presence.Push{push}})
	}, presence.TopicLocal)
}

// ConnectTyping takes other servers' typing notifications.
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
}

// ConnectReceipts takes other servers' public read receipts.
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
	servers, err := a.joinedServers(ctx, roomID)
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
