package roomadmin

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/membership"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
)

func badRequest(msg string) error {
	return &mxerr.Error{Status: http.StatusBadRequest, Code: "M_UNKNOWN", Message: msg}
}

// MakeRoomAdmin gives userID the power of the room's most powerful local
// member, as Synapse's make_room_admin: that member (joined, and able to
// change the power levels) sends the new power levels, then invites the
// user unless they are joined or invited already or the room is public.
// In rooms whose creators have unlimited power (v12), a creator raises
// the user to the highest finite level the room uses (at least 100).
// It needs a local member with power: a room this server has no state
// of is 400 "Server not in room", and a room (a remote one, say) where
// no joined local user has power 400 "No local admin user in room", as
// Synapse answers; Synapse does not join a room for this either.
func (s *Service) MakeRoomAdmin(ctx context.Context, roomID, userID string) error {
	state, err := s.currentState(ctx, roomID)
	if me, ok := mxerr.As(err); ok && me.Code == "M_NOT_FOUND" {
		return badRequest("Server not in room")
	} else if err != nil {
		return err
	}
	pl, err := s.o.Rooms.PowerLevels(ctx, state)
	if err != nil {
		return err
	}
	admin, level, err := s.localAdmin(ctx, state, pl.Users)
	if err != nil {
		return err
	}
	creators := map[string]bool{}
	if create, err := s.o.Rooms.StateEvent(ctx, state, spec.MRoomCreate, ""); err == nil && create != nil {
		for _, c := range rooms.Creators(create) {
			creators[c] = true
		}
	}
	if creators[admin] && level >= 1<<53 {
		level = 100
		for u, l := range pl.Users {
			if !creators[u] {
				level = max(level, l)
			}
		}
		level = max(level, pl.EventLevel(spec.MRoomPowerLevels, true))
	}
	if !(creators[userID] && creators[admin] && pl.Users[userID] == pl.Users[admin]) {
		if err := s.raise(ctx, roomID, state, admin, userID, level); err != nil {
			return err
		}
	}
	m, err := s.o.Rooms.MembershipIn(ctx, state, userID)
	if err != nil {
		return err
	}
	if m == spec.Join || m == spec.Invite {
		return nil
	}
	if jr, err := s.o.Rooms.StateEvent(ctx, state, spec.MRoomJoinRules, ""); err == nil && jr != nil {
		var c struct {
			JoinRule string `json:"join_rule"`
		}
		if json.Unmarshal(jr.Content(), &c) == nil && c.JoinRule == spec.Public {
			return nil
		}
	}
	return s.o.Membership.Invite(ctx, membership.InviteRequest{Sender: admin, RoomID: roomID, Target: userID})
}

// localAdmin is the joined local user with the most power in the room
// (ties broken by user ID), and that power.
func (s *Service) localAdmin(ctx context.Context, state rooms.StateMap, users map[string]int64) (string, int64, error) {
	var candidates []string
	for u := range users {
		if _, local := s.o.Accounts.LocalpartOf(u); local {
			candidates = append(candidates, u)
		}
	}
	slices.SortFunc(candidates, func(a, b string) int {
		if users[a] != users[b] {
			if users[a] > users[b] {
				return -1
			}
			return 1
		}
		if a < b {
			return -1
		}
		return 1
	})
	for _, u := range candidates {
		if m, err := s.o.Rooms.MembershipIn(ctx, state, u); err != nil {
			return "", 0, err
		} else if m == spec.Join {
			return u, users[u], nil
		}
	}
	return "", 0, badRequest("No local admin user in room")
}

// raise sends power levels giving target level, as admin.
func (s *Service) raise(ctx context.Context, roomID string, state rooms.StateMap, admin, target string, level int64) error {
	content := map[string]json.RawMessage{}
	users := map[string]json.RawMessage{}
	if ev, err := s.o.Rooms.StateEvent(ctx, state, spec.MRoomPowerLevels, ""); err != nil {
		return err
	} else if ev != nil {
		if err := json.Unmarshal(ev.Content(), &content); err != nil {
			return err
		}
		if raw, ok := content["users"]; ok {
			_ = json.Unmarshal(raw, &users)
		}
	}
	users[target], _ = json.Marshal(level)
	content["users"], _ = json.Marshal(users)
	key := ""
	_, err := s.o.Rooms.Send(ctx, rooms.SendRequest{RoomID: roomID, Sender: admin, Type: spec.MRoomPowerLevels, StateKey: &key, Content: content})
	if me, ok := mxerr.As(err); ok && me.Status == http.StatusForbidden {
		return badRequest("No local admin user in room with power to update power levels.")
	}
	return err
}
