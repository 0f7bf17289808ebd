package clientsync

import (
	"context"
	"encoding/json"
	"sort"

	"github.com/myelin-chat/myelin/internal/accountdata"
	"github.com/myelin-chat/myelin/internal/clientevent"
	"github.com/myelin-chat/myelin/internal/filter"
	"github.com/myelin-chat/myelin/internal/keys"
	"github.com/myelin-chat/myelin/internal/membership"
	"github.com/myelin-chat/myelin/internal/presence"
	"github.com/myelin-chat/myelin/internal/push"
	"github.com/myelin-chat/myelin/internal/receipts"
	"github.com/myelin-chat/myelin/internal/typing"
)

// Sources are the streams /sync reports besides room timelines and
// state. Each may be nil (its sections then stay empty).
type Sources struct {
	AccountData *accountdata.Service
	Push        *push.Service
	Typing      *typing.Service
	Receipts    *receipts.Service
	Presence    *presence.Service
	Keys        *keys.Service
	// Invites hides invites the user ignores or blocks (nil: none).
	Invites *membership.InviteRules
}

// maxToDevice is how many to-device messages one response carries
// (Synapse: 100); the rest come with the next.
const maxToDevice = 100

// addExtras fills the sections outside room timelines: account data,
// presence, to-device messages, device lists and key counts, and each
// joined room's ephemeral events, account data and unread counts; rooms
// with nothing but such news are added to the response.
func (s *Service) addExtras(ctx context.Context, p *pass, joined map[string]bool) error {
	src, req, resp := s.sources, p.req, p.resp
	if src.AccountData != nil {
		global, byRoom, err := src.AccountData.Changes(ctx, req.UserID, p.after, p.upto)
		if err != nil {
			return err
		}
		for _, ev := range global {
			if req.Filter.AccountData.Allows(ev.Type, req.UserID) {
				resp.AccountData.Events = append(resp.AccountData.Events, ev)
			}
		}
		for roomID, evs := range byRoom {
			if !joined[roomID] {
				continue
			}
			room := p.joinedEntry(roomID)
			for _, ev := range evs {
				if req.Filter.Room.AccountData.EventFilter.Allows(ev.Type, req.UserID) {
					room.AccountData.Events = append(room.AccountData.Events, ev)
				}
			}
		}
	}
	if err := s.addEphemeral(ctx, p, joined); err != nil {
		return err
	}
	if err := s.addUnreadCounts(ctx, p, joined); err != nil {
		return err
	}
	if src.Presence != nil {
		evs, err := src.Presence.Changes(ctx, req.UserID, p.after, p.upto)
		if err != nil {
			return err
		}
		if p.after != 0 && len(p.newlyShared) > 0 {
			for _, ev := range evs {
				delete(p.newlyShared, ev.Sender)
			}
			users := make([]string, 0, len(p.newlyShared))
			for u := range p.newlyShared {
				users = append(users, u)
			}
			sort.Strings(users)
			current, err := src.Presence.Current(ctx, users)
			if err != nil {
				return err
			}
			evs = append(evs, current...)
		}
		for _, ev := range evs {
			if req.Filter.Presence.Allows(ev.Type, ev.Sender) {
				resp.Presence.Events = append(resp.Presence.Events, ev)
			}
		}
	}
	return s.addKeys(ctx, p)
}

// addEphemeral adds typing lists that changed since the token (the
// current one, when not empty, for an initial sync) and new receipts.
func (s *Service) addEphemeral(ctx context.Context, p *pass, joined map[string]bool) error {
	f := p.req.Filter.Room.Ephemeral
	for roomID := range joined {
		if !filter.AllowsRoom(f.Rooms, f.NotRooms, roomID) {
			continue
		}
		if s.sources.Typing != nil && f.EventFilter.Allows("m.typing", "") {
			users, pos := s.sources.Typing.Typing(roomID)
			if (p.after == 0 && len(users) > 0) || (p.after != 0 && pos > p.after && pos <= p.upto) {
				room := p.joinedEntry(roomID)
				room.Ephemeral.Events = append(room.Ephemeral.Events, map[string]any{
					"type": "m.typing", "content": map[string]any{"user_ids": users}})
			}
		}
		if s.sources.Receipts != nil && f.EventFilter.Allows("m.receipt", "") {
			content, err := s.sources.Receipts.ForSync(ctx, p.req.UserID, roomID, p.after, p.upto)
			if err != nil {
				return err
			}
			if content != nil {
				room := p.joinedEntry(roomID)
				room.Ephemeral.Events = append(room.Ephemeral.Events, map[string]any{
					"type": "m.receipt", "content": json.RawMessage(content)})
			}
		}
	}
	return nil
}

// addUnreadCounts adds the unread counts of every joined room in the
// response and of rooms whose counts changed since the token (push
// evaluation runs behind the events, so counts can change alone).
func (s *Service) addUnreadCounts(ctx context.Context, p *pass, joined map[string]bool) error {
	if s.sources.Push == nil {
		return nil
	}
	if p.after != 0 {
		changed, err := s.sources.Push.CountsChanged(ctx, p.req.UserID, p.after, p.upto)
		if err != nil {
			return err
		}
		for _, roomID := range changed {
			if joined[roomID] {
				p.joinedEntry(roomID)
			}
		}
	}
	threaded := p.req.Filter.Room.Timeline.UnreadThreadNotifications
	for roomID, room := range p.resp.Rooms.Join {
		main, threads, err := s.sources.Push.UnreadCounts(ctx, p.req.UserID, roomID)
		if err != nil {
			return err
		}
		if threaded {
			if len(threads) > 0 {
				room.UnreadThreadNotifications = threads
			}
		} else {
			for _, c := range threads {
				main.NotificationCount += c.NotificationCount
				main.HighlightCount += c.HighlightCount
			}
		}
		room.UnreadNotifications = &main
	}
	return nil
}

// addKeys adds to-device messages (acknowledging those the token says
// the client has), device-list changes and the device's key counts.
func (s *Service) addKeys(ctx context.Context, p *pass) error {
	k, req, resp := s.sources.Keys, p.req, p.resp
	if k == nil || req.DeviceID == "" {
		return nil
	}
	since := int64(0)
	if req.Since != nil {
		since = req.Since.ToDevice
		if err := k.Ack(ctx, req.UserID, req.DeviceID, since); err != nil {
			return err
		}
	}
	msgs, next, err := k.ToDeviceMessages(ctx, req.UserID, req.DeviceID, since, maxToDevice)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		resp.ToDevice.Events = append(resp.ToDevice.Events, m)
	}
	p.next.ToDevice = max(next, since)
	resp.NextBatch = p.next.String()
	if p.after != 0 {
		changed, left, err := k.DeviceListChanges(ctx, req.UserID, p.after, p.upto)
		if err != nil {
			return err
		}
		resp.DeviceLists.Changed = append(resp.DeviceLists.Changed, changed...)
		resp.DeviceLists.Left = append(resp.DeviceLists.Left, left...)
	}
	if resp.DeviceOneTimeKeysCount, err = k.OneTimeKeyCounts(ctx, req.UserID, req.DeviceID); err != nil {
		return err
	}
	unused, err := k.UnusedFallbackKeyTypes(ctx, req.UserID, req.DeviceID)
	if err != nil {
		return err
	}
	resp.DeviceUnusedFallbackKeyTypes = append(resp.DeviceUnusedFallbackKeyTypes, unused...)
	return nil
}

// joinedEntry returns a joined room's entry, adding an empty one (no
// timeline events since the token) when the room had none.
func (p *pass) joinedEntry(roomID string) *JoinedRoom {
	if room, ok := p.resp.Rooms.Join[roomID]; ok {
		return room
	}
	room := newJoinedRoom()
	room.Timeline.PrevBatch = Token{Events: p.upto}.String()
	if p.req.UseStateAfter {
		// Required with use_state_after, even if empty (MSC4222).
		room.StateAfter = &EventList[clientevent.Event]{Events: []clientevent.Event{}}
	}
	p.resp.Rooms.Join[roomID] = room
	return room
}
