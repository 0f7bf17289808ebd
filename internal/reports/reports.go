// Package reports takes users' reports of events, rooms and users for
// the server's admins (client-server spec "Reporting content"), checking
// first that the reporter may report what they name, and, as an option,
// forwards reports of events to the moderators of their room.
package reports

import (
	"context"
	"errors"
	"log/slog"
	"time"
	"unicode/utf8"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/accounts"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/servernotices"
	"github.com/myelin-chat/myelin/internal/store"
)

// MaxReasonRunes bounds a report's reason, as Synapse's 1000 characters
// for user reports; Myelin applies it to every kind.
const MaxReasonRunes = 1000

// Store keeps the reports.
type Store interface {
	AddReport(ctx context.Context, r store.Report) (int64, error)
	SetReportForwards(ctx context.Context, id int64, users []string) error
}

// Users tells whether a local account exists.
type Users interface {
	User(ctx context.Context, localpart string) (accounts.User, error)
}

// Notices sends server notices (internal/servernotices).
type Notices interface {
	Enabled() bool
	SystemUser() string
	Send(ctx context.Context, userID string, n servernotices.Notice) (string, error)
}

// Options build the service.
type Options struct {
	ServerName string
	Store      Store
	Rooms      *rooms.Engine
	Users      Users
	// ForwardToModerators sends each report of an event to the room's
	// local moderators through Notices (config
	// reports.forward_to_moderators); off without Notices.
	ForwardToModerators bool
	Notices             Notices
	Log                 *slog.Logger
}

// Service files reports.
type Service struct {
	o   Options
	now func() time.Time
}

// New makes the report service.
func New(o Options) *Service {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Service{o: o, now: time.Now}
}

// checkReason refuses reasons over MaxReasonRunes.
func checkReason(reason string) error {
	if utf8.RuneCountInString(reason) > MaxReasonRunes {
		return mxerr.BadJSON("Reason must be at most %d characters", MaxReasonRunes)
	}
	return nil
}

// Event reports an event. The reporter must be joined to the room (spec,
// v1.8); otherwise M_NOT_FOUND, which says nothing of whether the room
// exists since a room nobody knows is also one the reporter is not
// joined to. A member who names an event that does not exist, or that
// they cannot see, is answered as if it were reported (v1.18 lets
// servers hide which events exist) and nothing is stored.
func (s *Service) Event(ctx context.Context, reporter, roomID, eventID, reason string) error {
	if err := checkReason(reason); err != nil {
		return err
	}
	if m, err := s.o.Rooms.MembershipOf(ctx, roomID, reporter); err != nil || m != spec.Join {
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			if _, ok := mxerr.As(err); !ok {
				return err
			}
		}
		return mxerr.NotFound("The event was not found or you are not joined to the room.")
	}
	ev, err := s.o.Rooms.VisibleEvent(ctx, roomID, eventID, reporter)
	if err != nil {
		if _, ok := mxerr.As(err); ok || errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}
	id, err := s.o.Store.AddReport(ctx, store.Report{Reporter: reporter, RoomID: roomID, EventID: eventID,
		Reason: reason, ReceivedTS: s.now().UnixMilli()})
	if err != nil {
		return err
	}
	if s.o.ForwardToModerators && s.o.Notices != nil && s.o.Notices.Enabled() {
		s.forward(ctx, id, reporter, ev, reason)
	}
	return nil
}

// Room reports a room; the reporter need not be in it. A room this
// server does not know is answered as if it were reported (v1.18) and
// nothing is stored, as there is nothing here for an admin to act on.
func (s *Service) Room(ctx context.Context, reporter, roomID, reason string) error {
	if err := checkReason(reason); err != nil {
		return err
	}
	if _, err := s.o.Rooms.RoomVersion(ctx, roomID); err != nil {
		if _, ok := mxerr.As(err); ok || errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}
	_, err := s.o.Store.AddReport(ctx, store.Report{Reporter: reporter, RoomID: roomID, Reason: reason, ReceivedTS: s.now().UnixMilli()})
	return err
}

// User reports a user. A local user who does not exist is answered as
// if reported (v1.18) and nothing is stored, as Synapse does. Unlike
// Synapse, reports of other servers' users are kept: this server's
// admins can still act on them (bans in local rooms, policy lists).
func (s *Service) User(ctx context.Context, reporter, target, reason string) error {
	uid, err := spec.NewUserID(target, true)
	if err != nil {
		return mxerr.InvalidParam("%q is not a valid user ID", target)
	}
	if err := checkReason(reason); err != nil {
		return err
	}
	if string(uid.Domain()) == s.o.ServerName {
		if _, err := s.o.Users.User(ctx, uid.Local()); err != nil {
			if errors.Is(err, accounts.ErrNoSuchUser) {
				return nil
			}
			return err
		}
	}
	_, err = s.o.Store.AddReport(ctx, store.Report{Reporter: reporter, TargetUserID: target, Reason: reason, ReceivedTS: s.now().UnixMilli()})
	return err
}
