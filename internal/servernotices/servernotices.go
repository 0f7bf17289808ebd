// Package servernotices sends server notices: messages from the server's
// administrators to one user, in a room of that user's own with a system
// user, as Synapse's server notices do (the admin API's
// send_server_notice; config server_notices).
package servernotices

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/accountdata"
	"github.com/myelin-chat/myelin/internal/accounts"
	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// Tag marks a user's server-notices room (spec "Server Notices").
const Tag = "m.server_notice"

// Store is what the service reads of memberships.
type Store interface {
	MembershipsOf(ctx context.Context, userID string, memberships ...string) ([]store.RoomMembership, error)
	MemberCounts(ctx context.Context, roomID string) (joined, invited int64, err error)
}

// Options build the service.
type Options struct {
	ServerName  string
	Config      config.ServerNotices
	Rooms       *rooms.Engine
	Store       Store
	Accounts    *accounts.Service
	AccountData *accountdata.Service
	// MaxTagBytes bounds a room's tags, as for the user's own.
	MaxTagBytes int
}

// Service sends server notices.
type Service struct {
	o Options
	// mu serialises finding or creating notice rooms, so that two
	// notices sent at once to a new user make one room.
	mu sync.Mutex
}

// New makes the service.
func New(o Options) *Service { return &Service{o: o} }

// Enabled reports whether a system user is configured.
func (s *Service) Enabled() bool { return s.o.Config.SystemMxidLocalpart != "" }

// SystemUser is the system user's ID.
func (s *Service) SystemUser() string {
	return "@" + s.o.Config.SystemMxidLocalpart + ":" + s.o.ServerName
}

// Notice is one notice: an event's type (m.room.message when empty),
// state key (nil for a message) and content.
type Notice struct {
	Type     string
	StateKey *string
	Content  json.RawMessage
	// Txn, when set, makes a retry return the event first sent.
	Txn *rooms.Txn
}

// Send sends a notice to a local user, in their notices room (made on
// the first notice), and returns the event ID.
func (s *Service) Send(ctx context.Context, userID string, n Notice) (string, error) {
	if !s.Enabled() {
		return "", refused("Server notices are not enabled on this server")
	}
	lp, local := s.o.Accounts.LocalpartOf(userID)
	if !local {
		return "", refused("Server notices can only be sent to local users")
	}
	if _, err := s.o.Accounts.User(ctx, lp); err != nil {
		return "", mxerr.NotFound("User not found")
	}
	if userID == s.SystemUser() {
		return "", refused("Server notices cannot be sent to the system user")
	}
	roomID, err := s.roomFor(ctx, userID)
	if err != nil {
		return "", err
	}
	typ := n.Type
	if typ == "" {
		typ = "m.room.message"
	}
	ev, err := s.o.Rooms.Send(ctx, rooms.SendRequest{RoomID: roomID, Sender: s.SystemUser(), Type: typ, StateKey: n.StateKey, Content: n.Content, Txn: n.Txn})
	if err != nil {
		return "", err
	}
	return ev.EventID(), nil
}

// roomFor finds the user's notices room or makes it. As Synapse, it is a
// room the user is joined or invited to where the system user is joined
// and nobody else; a user who left it gets a new one.
func (s *Service) roomFor(ctx context.Context, userID string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mine, err := s.o.Store.MembershipsOf(ctx, userID, spec.Join, spec.Invite)
	if err != nil {
		return "", err
	}
	system := s.SystemUser()
	for _, m := range mine {
		if sm, err := s.o.Rooms.MembershipOf(ctx, m.RoomID, system); err != nil {
			return "", err
		} else if sm != spec.Join {
			continue
		}
		joined, invited, err := s.o.Store.MemberCounts(ctx, m.RoomID)
		if err != nil {
			return "", err
		}
		if joined+invited <= 2 {
			return m.RoomID, s.refresh(ctx, m.RoomID)
		}
	}
	return s.create(ctx, userID)
}

// create makes a user's notices room as Synapse does: private, not
// federated, named from the config, the user invited (or joined, with
// auto_join) at users_default -10 so that only the system user speaks,
// and tagged m.server_notice for the user.
func (s *Service) create(ctx context.Context, userID string) (string, error) {
	c := s.o.Config
	profile := s.profile()
	var initial []rooms.StateEvent
	if c.RoomAvatarURL != "" {
		raw, _ := json.Marshal(map[string]string{"url": c.RoomAvatarURL})
		initial = append(initial, rooms.StateEvent{Type: spec.MRoomAvatar, Content: raw})
	}
	req := rooms.CreateRequest{
		Creator:            s.SystemUser(),
		Preset:             rooms.PresetPrivateChat,
		CreationContent:    map[string]json.RawMessage{"m.federate": json.RawMessage("false")},
		PowerLevelOverride: map[string]json.RawMessage{"users_default": json.RawMessage("-10")},
		InitialState:       initial,
		Invite:             []string{userID},
		CreatorContent:     profile,
	}
	if c.RoomName != "" {
		req.Name = &c.RoomName
	}
	if c.RoomTopic != "" {
		req.Topic = &c.RoomTopic
	}
	roomID, err := s.o.Rooms.CreateRoom(ctx, req)
	if err != nil {
		return "", err
	}
	if c.AutoJoin {
		if _, err := s.o.Rooms.SetMembership(ctx, rooms.MembershipRequest{Sender: userID, RoomID: roomID, Target: userID, Membership: spec.Join}); err != nil {
			return "", err
		}
	}
	if err := s.o.AccountData.SetTag(ctx, userID, roomID, Tag, json.RawMessage(`{}`), s.o.MaxTagBytes); err != nil {
		return "", err
	}
	return roomID, nil
}

// refused is Synapse's answer to a notice it will not send: 400 M_UNKNOWN.
func refused(msg string) error {
	return &mxerr.Error{Status: http.StatusBadRequest, Code: "M_UNKNOWN", Message: msg}
}
