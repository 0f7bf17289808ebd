// Package threadsubs keeps users' thread subscriptions (MSC4306): which
// threads a user follows, so that push notifies of replies in those
// (the postcontent rules .m.rule.subscribed_thread and
// .m.rule.unsubscribed_thread, internal/push) and not of the others.
//
// Clients subscribe a user by hand, or automatically when the user takes
// part in a thread, naming the event that caused it; an automatic
// subscription whose cause came before the user's latest unsubscription
// is refused (409 M_CONFLICTING_UNSUBSCRIPTION), so that a client
// catching up on old events does not undo the user's choice. Each change
// takes the next stream ID, which ChangesSince pages through for sliding
// sync's MSC4308 extension.
package threadsubs

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/myelin-chat/myelin/internal/ident"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// Errcodes of MSC4306, under its unstable prefix as Synapse sends them.
const (
	ErrNotInThread               = "IO.ELEMENT.MSC4306.M_NOT_IN_THREAD"
	ErrConflictingUnsubscription = "IO.ELEMENT.MSC4306.M_CONFLICTING_UNSUBSCRIPTION"
)

// Rooms is what the service asks of the room engine.
type Rooms interface {
	VisibleEvent(ctx context.Context, roomID, eventID, userID string) (*rooms.Event, error)
	Stream() *rooms.StreamGen
}

// Service keeps thread subscriptions.
type Service struct {
	db    *store.DB
	rooms Rooms
	wake  func(userID string)
}

// New makes the service. wake (may be nil) is told of each user whose
// subscriptions changed, so that a long-polling sliding sync connection
// answers with the change (MSC4308).
func New(db *store.DB, r Rooms, wake func(userID string)) *Service {
	return &Service{db: db, rooms: r, wake: wake}
}

// changed wakes the user's syncs after a change (id 0: none was made).
func (s *Service) changed(userID string, id int64, err error) error {
	if err == nil && id != 0 && s.wake != nil {
		s.wake(userID)
	}
	return err
}

// Subscription is a user's subscription to a thread.
type Subscription struct {
	Automatic bool
}

// Change is one thread's subscription state after a change, for
// ChangesSince: Subscribed false is an unsubscription.
type Change struct {
	RoomID, ThreadRootID string
	Subscribed           bool
	Automatic            bool
	// Pos is the change's stream ID.
	Pos int64
}

// root checks that the thread root is an event of the room the user may
// see: 404 otherwise, as Synapse answers.
func (s *Service) root(ctx context.Context, userID, roomID, rootID string) error {
	if ident.CheckID(roomID) != nil || ident.CheckID(rootID) != nil || len(rootID) == 0 || rootID[0] != '$' {
		return mxerr.InvalidParam("Invalid room or event ID")
	}
	if _, err := s.rooms.VisibleEvent(ctx, roomID, rootID, userID); err != nil {
		if _, ok := mxerr.As(err); ok {
			return mxerr.NotFound("No such thread root")
		}
		return err
	}
	return nil
}

// Get answers a user's subscription to a thread; nil when not subscribed.
func (s *Service) Get(ctx context.Context, userID, roomID, rootID string) (*Subscription, error) {
	if err := s.root(ctx, userID, roomID, rootID); err != nil {
		return nil, err
	}
	row, err := s.db.ThreadSubscriptionOf(ctx, userID, roomID, rootID)
	if errors.Is(err, store.ErrNotFound) || err == nil && !row.Subscribed {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &Subscription{Automatic: row.Automatic}, nil
}

// Subscribed reports whether a user follows a thread (push's
// io.element.msc4306.thread_subscription condition).
func (s *Service) Subscribed(ctx context.Context, userID, roomID, rootID string) (bool, error) {
	row, err := s.db.ThreadSubscriptionOf(ctx, userID, roomID, rootID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil && row.Subscribed, err
}

// Subscribe subscribes a user to a thread: by hand (automatic nil),
// which replaces an automatic subscription, or automatically because of
// the event *automatic, which must be in the thread and must not come
// before the user's latest unsubscription; an automatic subscription
// leaves an existing subscription as it is.
func (s *Service) Subscribe(ctx context.Context, userID, roomID, rootID string, automatic *string) error {
	if err := s.root(ctx, userID, roomID, rootID); err != nil {
		return err
	}
	var causePos int64
	if automatic != nil {
		if ident.CheckID(*automatic) != nil {
			return mxerr.InvalidParam("Invalid automatic event ID")
		}
		cause, err := s.rooms.VisibleEvent(ctx, roomID, *automatic, userID)
		if err != nil {
			if _, ok := mxerr.As(err); ok {
				return mxerr.NotFound("No such automatic subscription cause event")
			}
			return err
		}
		if threadRoot(cause.Content()) != rootID {
			return &mxerr.Error{Status: http.StatusBadRequest, Code: ErrNotInThread, Message: "Automatic subscription must be caused by an event in the thread"}
		}
		causePos = cause.StreamPos
	}
	id, err := s.db.SetThreadSubscription(ctx, userID, roomID, rootID, func(cur *store.ThreadSubscription) (store.ThreadSubscription, bool, error) {
		next := store.ThreadSubscription{Subscribed: true, Automatic: automatic != nil}
		if cur != nil {
			next.UnsubscribedAt = cur.UnsubscribedAt
		}
		if automatic == nil {
			return next, cur == nil || !cur.Subscribed || cur.Automatic, nil
		}
		if cur != nil && cur.Subscribed {
			return next, false, nil
		}
		if cur != nil && causePos <= cur.UnsubscribedAt {
			return next, false, &mxerr.Error{Status: http.StatusConflict, Code: ErrConflictingUnsubscription,
				Message: "Automatic subscription obsoleted by an unsubscription request."}
		}
		return next, true, nil
	})
	return s.changed(userID, id, err)
}

// Unsubscribe ends a user's subscription to a thread; unsubscribing
// from a thread not followed succeeds and changes nothing.
func (s *Service) Unsubscribe(ctx context.Context, userID, roomID, rootID string) error {
	if err := s.root(ctx, userID, roomID, rootID); err != nil {
		return err
	}
	// Events up to here are before the unsubscription: an automatic
	// subscription caused by one of them is refused from now on.
	now := s.rooms.Stream().Current()
	id, err := s.db.SetThreadSubscription(ctx, userID, roomID, rootID, func(cur *store.ThreadSubscription) (store.ThreadSubscription, bool, error) {
		return store.ThreadSubscription{UnsubscribedAt: now}, cur != nil && cur.Subscribed, nil
	})
	return s.changed(userID, id, err)
}

// ChangesSince lists a user's thread subscription changes after stream
// position pos (0: all), oldest first, at most limit, and the position
// to ask from next time (pos itself when nothing changed). It is what
// sliding sync's MSC4308 thread_subscriptions extension serves: a
// change with Subscribed false is an unsubscription.
//
// Positions are per change across all users; on PostgreSQL two changes
// committed at once may share one, so a caller must not take a
// position newer than MaxPos() at the time it started reading.
func (s *Service) ChangesSince(ctx context.Context, userID string, pos int64, limit int) ([]Change, int64, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.db.ThreadSubscriptionChanges(ctx, userID, pos, limit)
	if err != nil {
		return nil, pos, err
	}
	out := make([]Change, 0, len(rows))
	next := pos
	for _, r := range rows {
		out = append(out, Change{RoomID: r.RoomID, ThreadRootID: r.ThreadRootID, Subscribed: r.Subscribed, Automatic: r.Automatic, Pos: r.StreamID})
		next = max(next, r.StreamID)
	}
	return out, next, nil
}

// MaxPos is the latest change's position across all users.
func (s *Service) MaxPos(ctx context.Context) (int64, error) {
	return s.db.MaxThreadSubscriptionStreamID(ctx)
}

// threadRoot is the root an event's m.thread relation names ("" none).
func threadRoot(content []byte) string {
	var c struct {
		Rel struct {
			Type    string `json:"rel_type"`
			EventID string `json:"event_id"`
		} `json:"m.relates_to"`
	}
	if json.Unmarshal(content, &c) != nil || c.Rel.Type != "m.thread" {
		return ""
	}
	return c.Rel.EventID
}
