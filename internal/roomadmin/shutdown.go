package roomadmin

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// Shutting a room down and purging it (Synapse's room deletion API):
// the room is blocked if asked, taken out of the room directory, its
// local members leave it (and, with a new room, join that instead, where
// a message tells them why, and the room's local aliases move there),
// and then, if asked, it is purged from the database.

// Synapse's defaults for the room its users are moved to.
const (
	DefaultRoomName = "Content Violation Notification"
	DefaultMessage  = "Sharing illegal content on this server is not permitted and rooms in violation will be blocked."
)

// ShutdownRequest is a deletion's parameters.
type ShutdownRequest struct {
	RoomID string
	// Requester is the admin asking; recorded as who blocked the room.
	Requester string
	// NewRoomUserID, when set, creates a room that the local members join
	// instead, with RoomName and Message.
	NewRoomUserID     string
	RoomName, Message string
	Block             bool
	Purge, ForcePurge bool
	// newRoomID is the new room an interrupted run of the same deletion
	// created, to be used again rather than create another; newRoomMade
	// is told the room a run creates, so it can be recorded (jobs.go).
	newRoomID   string
	newRoomMade func(roomID string)
}

// ShutdownResult is what the deletion did (Synapse's shutdown_room).
type ShutdownResult struct {
	KickedUsers       []string `json:"kicked_users"`
	FailedToKickUsers []string `json:"failed_to_kick_users"`
	LocalAliases      []string `json:"local_aliases"`
	NewRoomID         *string  `json:"new_room_id"`
}

// CheckShutdown refuses a deletion that cannot start: a room ID that is
// not one, a new room's creator who is not a local user, an unknown room
// that is not to be blocked.
func (s *Service) CheckShutdown(ctx context.Context, req ShutdownRequest) error {
	if !strings.HasPrefix(req.RoomID, "!") {
		return mxerr.InvalidParam("%s is not a legal room ID", req.RoomID)
	}
	if req.NewRoomUserID != "" {
		lp, local := s.o.Accounts.LocalpartOf(req.NewRoomUserID)
		if !local {
			return mxerr.InvalidParam("User must be our own: %s", req.NewRoomUserID)
		}
		if _, err := s.o.Accounts.User(ctx, lp); err != nil {
			return err
		}
	}
	if _, err := s.currentState(ctx, req.RoomID); err != nil && !req.Block {
		return err
	}
	return nil
}

// Shutdown deletes a room as req says; progress is told when the purge
// starts. An unknown room is only blocked.
func (s *Service) Shutdown(ctx context.Context, req ShutdownRequest, purging func()) (ShutdownResult, error) {
	res := ShutdownResult{KickedUsers: []string{}, FailedToKickUsers: []string{}, LocalAliases: []string{}}
	if err := s.CheckShutdown(ctx, req); err != nil {
		return res, err
	}
	if req.Block {
		if err := s.o.Store.BlockRoom(ctx, req.RoomID, req.Requester); err != nil {
			return res, err
		}
	}
	state, err := s.currentState(ctx, req.RoomID)
	if err != nil {
		// Not known here: blocked, nothing else to do.
		return res, nil
	}
	s.o.Log.Info("admin: shutting down room", "room_id", req.RoomID, "by", req.Requester, "block", req.Block, "purge", req.Purge)
	if err := s.o.Directory.SetPublished(ctx, req.RoomID, false); err != nil {
		return res, err
	}
	newRoom := req.newRoomID
	if req.NewRoomUserID != "" && newRoom == "" {
		if newRoom, err = s.createNotificationRoom(ctx, req); err != nil {
			return res, err
		}
		if req.newRoomMade != nil {
			req.newRoomMade(newRoom)
		}
	}
	if newRoom != "" {
		res.NewRoomID = &newRoom
	}
	members, err := s.joined(ctx, state, true)
	if err != nil {
		return res, err
	}
	for _, userID := range members {
		if err := s.moveMember(ctx, userID, req.RoomID, newRoom); err != nil {
			s.o.Log.Warn("admin: room shutdown could not remove a member", "room_id", req.RoomID, "user_id", userID, "err", err)
			res.FailedToKickUsers = append(res.FailedToKickUsers, userID)
			continue
		}
		res.KickedUsers = append(res.KickedUsers, userID)
	}
	if newRoom != "" {
		text, _ := json.Marshal(map[string]string{"msgtype": "m.text", "body": req.Message})
		if _, err := s.o.Rooms.Send(ctx, rooms.SendRequest{RoomID: newRoom, Sender: req.NewRoomUserID, Type: "m.room.message", Content: json.RawMessage(text)}); err != nil {
			return res, err
		}
		if res.LocalAliases, err = s.o.Aliases.ForRoom(ctx, req.RoomID); err != nil {
			return res, err
		}
		if res.LocalAliases == nil {
			res.LocalAliases = []string{}
		}
		if err := s.o.Aliases.Move(ctx, req.RoomID, newRoom); err != nil {
			return res, err
		}
	}
	if !req.Purge {
		return res, nil
	}
	if purging != nil {
		purging()
	}
	return res, s.Purge(ctx, req.RoomID, req.ForcePurge)
}

// moveMember makes a local member leave the room and forget it, and join
// the new room if there is one: the member leaves as themselves, as in
// Synapse, so that no power in the room is needed.
func (s *Service) moveMember(ctx context.Context, userID, roomID, newRoom string) error {
	if _, err := s.o.Membership.Leave(ctx, userID, roomID, ""); err != nil {
		return err
	}
	if err := s.o.Store.ForgetRoom(ctx, userID, roomID); err != nil {
		return err
	}
	if newRoom != "" {
		return s.o.Membership.Join(ctx, userID, newRoom, nil, nil)
	}
	return nil
}

// createNotificationRoom creates the room members are moved to: public,
// where they may read but not speak (users_default -10), as Synapse.
func (s *Service) createNotificationRoom(ctx context.Context, req ShutdownRequest) (string, error) {
	name := req.RoomName
	lp, _ := s.o.Accounts.LocalpartOf(req.NewRoomUserID)
	return s.o.Rooms.CreateRoom(ctx, rooms.CreateRequest{
		Creator: req.NewRoomUserID, Preset: "public_chat", Name: &name,
		PowerLevelOverride: map[string]json.RawMessage{"users_default": json.RawMessage(`-10`)},
		CreatorContent:     s.o.Membership.MemberProfile(ctx, lp),
	})
}

// Purge removes a room from the database. Unless force, it is refused
// while local users are still joined, as Synapse does.
func (s *Service) Purge(ctx context.Context, roomID string, force bool) error {
	if !force {
		if state, err := s.currentState(ctx, roomID); err == nil {
			joined, err := s.joined(ctx, state, true)
			if err != nil {
				return err
			}
			if len(joined) > 0 {
				return &mxerr.Error{Status: http.StatusBadRequest, Code: "M_UNKNOWN", Message: "Users are still joined to this room"}
			}
		}
	}
	s.o.Log.Info("admin: purging room", "room_id", roomID)
	return s.o.Rooms.Purge(ctx, roomID, func(ctx context.Context) (store.PurgedRoom, error) {
		return s.o.Store.PurgeRoom(ctx, roomID)
	})
}
