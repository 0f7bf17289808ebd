package servernotices

import (
	"context"
	"encoding/json"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/rooms"
)

// refresh brings a user's existing notices room up to the configuration
// before a notice goes in, as Synapse does when it finds the room: the
// system user's display name and avatar (its member event), and the
// room's name, topic and avatar where the configuration sets them. An
// admin who renames the system user then sees the new name in every
// room that gets a notice, without making new rooms.
func (s *Service) refresh(ctx context.Context, roomID string) error {
	c := s.o.Config
	state, err := s.o.Rooms.CurrentState(ctx, roomID)
	if err != nil {
		return err
	}
	system := s.SystemUser()
	member, err := s.o.Rooms.StateEvent(ctx, state, spec.MRoomMember, system)
	if err != nil {
		return err
	}
	if member != nil {
		var have struct {
			Displayname string `json:"displayname"`
			AvatarURL   string `json:"avatar_url"`
		}
		_ = json.Unmarshal(member.Content(), &have)
		if have.Displayname != c.SystemMxidDisplayName || have.AvatarURL != c.SystemMxidAvatarURL {
			if _, err := s.o.Rooms.SetMembership(ctx, rooms.MembershipRequest{Sender: system, RoomID: roomID, Target: system, Membership: spec.Join, Content: s.profile()}); err != nil {
				return err
			}
		}
	}
	for _, want := range []struct{ typ, field, value string }{
		{spec.MRoomName, "name", c.RoomName},
		{spec.MRoomTopic, "topic", c.RoomTopic},
		{spec.MRoomAvatar, "url", c.RoomAvatarURL},
	} {
		if want.value == "" {
			continue
		}
		ev, err := s.o.Rooms.StateEvent(ctx, state, want.typ, "")
		if err != nil {
			return err
		}
		if ev != nil {
			var have map[string]any
			_ = json.Unmarshal(ev.Content(), &have)
			if v, _ := have[want.field].(string); v == want.value {
				continue
			}
		}
		empty := ""
		if _, err := s.o.Rooms.Send(ctx, rooms.SendRequest{RoomID: roomID, Sender: system, Type: want.typ, StateKey: &empty, Content: map[string]string{want.field: want.value}}); err != nil {
			return err
		}
	}
	return nil
}

// profile is the system user's member-event content from the
// configuration.
func (s *Service) profile() map[string]any {
	c := s.o.Config
	profile := map[string]any{}
	if c.SystemMxidDisplayName != "" {
		profile["displayname"] = c.SystemMxidDisplayName
	}
	if c.SystemMxidAvatarURL != "" {
		profile["avatar_url"] = c.SystemMxidAvatarURL
	}
	return profile
}
