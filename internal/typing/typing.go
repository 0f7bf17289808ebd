// Package typing keeps who is typing in which room: in memory only, as
// every server does, since a typing notification is worth nothing a
// minute later. Each change takes a position on the event stream so that
// /sync can tell which rooms' typing lists changed since a token.
package typing

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/periodic"
	"github.com/myelin-chat/myelin/internal/rooms"
)

// RemoteTimeout bounds typing notifications from other servers, which
// carry no timeout of their own (Synapse's FEDERATION_TIMEOUT).
const RemoteTimeout = 60 * time.Second

// MaxTimeout caps the timeout a client may ask for (Synapse: 2 minutes
// would be generous; clients send 30 s).
const MaxTimeout = 120 * time.Second

// Changed is published on every change to a room's typing list (to
// wake the /sync requests of the room's local members).
type Changed struct {
	RoomID string `json:"room_id"`
}

// Local is published for local users' typing, to send it to the other
// servers in the room.
type Local struct {
	RoomID string `json:"room_id"`
	UserID string `json:"user_id"`
	Typing bool   `json:"typing"`
}

// Topics of the changes this package publishes.
const (
	TopicChanged = "typing.changed"
	TopicLocal   = "typing.local"
)

// Topic implements bus.Change.
func (Changed) Topic() string { return TopicChanged }

// Topic implements bus.Change.
func (Local) Topic() string { return TopicLocal }

// Service tracks typing users per room.
type Service struct {
	stream *rooms.StreamGen
	bus    bus.Bus
	now    func() time.Time

	mu    sync.Mutex
	rooms map[string]*roomTyping
}

type roomTyping struct {
	until   map[string]time.Time // user -> when their typing expires
	pos     int64                // stream position of the last change
	changed time.Time
}

// forgetAfter is how long a room with nobody typing keeps its last
// change, so that /sync requests holding an older token still see the
// list empty out.
const forgetAfter = 10 * time.Minute

// New makes the service; it publishes Changed and Local on b.
func New(stream *rooms.StreamGen, b bus.Bus) *Service {
	return &Service{stream: stream, bus: b, now: time.Now, rooms: map[string]*roomTyping{}}
}

// Set records that a local user started (for timeout) or stopped typing.
// Other servers hear of every start, not only changes: clients repeat it
// while the user types, which keeps the other servers' own timeout
// (RemoteTimeout) from running out.
func (s *Service) Set(roomID, userID string, typing bool, timeout time.Duration) {
	changed := s.set(roomID, userID, typing, min(timeout, MaxTimeout))
	if changed || typing {
		s.bus.Publish(context.Background(), Local{RoomID: roomID, UserID: userID, Typing: typing})
	}
}

// SetRemote records a typing notification from another server.
func (s *Service) SetRemote(roomID, userID string, typing bool) {
	s.set(roomID, userID, typing, RemoteTimeout)
}

// set applies a change and reports whether the room's list changed (a
// user typing again only extends their timeout).
func (s *Service) set(roomID, userID string, typing bool, timeout time.Duration) bool {
	s.mu.Lock()
	r := s.rooms[roomID]
	if r == nil {
		if !typing {
			s.mu.Unlock()
			return false
		}
		r = &roomTyping{until: map[string]time.Time{}}
		s.rooms[roomID] = r
	}
	_, was := r.until[userID]
	if typing {
		r.until[userID] = s.now().Add(timeout)
	} else {
		delete(r.until, userID)
	}
	changed := was != typing
	if changed {
		r.pos, r.changed = s.advance(), s.now()
	}
	s.mu.Unlock()
	if changed {
		s.bus.Publish(context.Background(), Changed{RoomID: roomID})
	}
	return changed
}

// advance takes a stream position for a change, readable at once.
func (s *Service) advance() int64 {
	pos := s.stream.Next()
	s.stream.Done(pos)
	return pos
}

// Typing returns who is typing in a room and the stream position of the
// list's last change (0 when it never changed since start-up).
func (s *Service) Typing(roomID string) ([]string, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms[roomID]
	if r == nil {
		return []string{}, 0
	}
	users := make([]string, 0, len(r.until))
	for u := range r.until {
		users = append(users, u)
	}
	slices.Sort(users)
	return users, r.pos
}

// Run expires typing notifications whose timeout passed, until ctx ends.
func (s *Service) Run(ctx context.Context, every time.Duration) error {
	periodic.Every(ctx, every, s.expire)
	return nil
}

func (s *Service) expire() {
	now := s.now()
	var changed []string
	s.mu.Lock()
	for roomID, r := range s.rooms {
		n := len(r.until)
		for u, until := range r.until {
			if now.After(until) {
				delete(r.until, u)
			}
		}
		if len(r.until) != n {
			r.pos, r.changed = s.advance(), now
			changed = append(changed, roomID)
		} else if n == 0 && now.Sub(r.changed) > forgetAfter {
			delete(s.rooms, roomID)
		}
	}
	s.mu.Unlock()
	for _, roomID := range changed {
		s.bus.Publish(context.Background(), Changed{RoomID: roomID})
	}
}
