// Package reports takes users' reports of events, rooms and users for
// the server's admins (client-server spec "Reporting content"), checking
// first that the reporter may report what they name.
package reports

import (
	"context"
	"errors"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/accounts"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// Store keeps the reports.
type Store interface {
	AddReport(ctx context.Context, r store.Report) error
}

// Users tells whether a local account exists.
type Users interface {
	User(ctx context.Context, localpart string) (accounts.User, error)
}

// Service files reports.
type Service struct {
	serverName string
	st         Store
	rooms      *rooms.Engine
	users      Users
	now        func() time.Time
}

// New makes the report service.
func New(serverName string, st Store, engine *rooms.Engine, users Users) *Service {
	return &Service{serverName: serverName, st: st, rooms: engine, users: users, now: time.Now}
}

// Event reports an event. The reporter must be joined to the room (spec)
// and able to see the event; otherwise M_NOT_FOUND, indistinguishable
// from a missing event. score is the deprecated event report score.
func (s *Service) Event(ctx context.Context, reporter, roomID, eventID, reason string, score *int64) error {
	notFound := mxerr.NotFound("The event was not found or you are not joined to the room.")
	if m, err := s.rooms.MembershipOf(ctx, roomID, reporter); err != nil || m != spec.Join {
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return notFound
	}
	if _, err := s.rooms.VisibleEvent(ctx, roomID, eventID, reporter); err != nil {
		if _, ok := mxerr.As(err); ok {
			return notFound
		}
		return err
	}
	return s.st.AddReport(ctx, store.Report{Reporter: reporter, RoomID: roomID, EventID: eventID,
		Reason: reason, Score: score, ReceivedTS: s.now().UnixMilli()})
}

// Room reports a room: anyone may report a room this server knows.
func (s *Service) Room(ctx context.Context, reporter, roomID, reason string) error {
	if _, err := s.rooms.RoomVersion(ctx, roomID); err != nil {
		if _, ok := mxerr.As(err); ok {
			return mxerr.NotFound("The room was not found.")
		}
		return err
	}
	return s.st.AddReport(ctx, store.Report{Reporter: reporter, RoomID: roomID, Reason: reason, ReceivedTS: s.now().UnixMilli()})
}

// User reports a user: a local user must exist; another server's users
// cannot be checked here and are taken as given.
func (s *Service) User(ctx context.Context, reporter, target, reason string) error {
	uid, err := spec.NewUserID(target, true)
	if err != nil {
		return mxerr.InvalidParam("%q is not a valid user ID", target)
	}
	if string(uid.Domain()) == s.serverName {
		if _, err := s.users.User(ctx, uid.Local()); err != nil {
			if errors.Is(err, accounts.ErrNoSuchUser) {
				return mxerr.NotFound("The user was not found.")
			}
			return err
		}
	}
	return s.st.AddReport(ctx, store.Report{Reporter: reporter, TargetUserID: target, Reason: reason, ReceivedTS: s.now().UnixMilli()})
}
