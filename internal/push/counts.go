package push

import (
	"context"
	"encoding/json"
	"math"
	"sync"

	"github.com/myelin-chat/myelin/internal/cache"
	"github.com/myelin-chat/myelin/internal/store"
)

// Counts are unread notification counts (/sync's unread_notifications).
type Counts struct {
	NotificationCount int64 `json:"notification_count"`
	HighlightCount    int64 `json:"highlight_count"`
}

// UnreadCounts are a user's unread counts in a room: those of the main
// timeline (events in no thread, thread roots included), and those of
// each thread by thread root. A /sync without
// unread_thread_notifications adds them up.
func (s *Service) UnreadCounts(ctx context.Context, userID, roomID string) (Counts, map[string]Counts, error) {
	rows, err := s.storedCounts(ctx, userID, roomID)
	if err != nil {
		return Counts{}, nil, err
	}
	var main Counts
	threads := map[string]Counts{}
	for _, r := range rows {
		c := Counts{NotificationCount: r.Notifications, HighlightCount: r.Highlights}
		if r.ThreadID == "" {
			main = c
		} else {
			threads[r.ThreadID] = c
		}
	}
	return main, threads, nil
}

// CountsChanged lists the rooms where new notifications for a user were
// counted at stream positions in (after, upto]: /sync includes their
// unread counts even when nothing else in them changed, since evaluation
// runs behind the events.
func (s *Service) CountsChanged(ctx context.Context, userID string, after, upto int64) ([]string, error) {
	if s.countMarks.Unchanged(userID, after) {
		return nil, nil
	}
	if rooms, ok := s.recentCounts.changed(userID, after, upto); ok {
		return rooms, nil
	}
	return s.store.PushCountsChanged(ctx, userID, after, upto)
}

// countsKey keys the unread counts cache: a user and a room.
type countsKey struct{ user, room string }

// storedCounts are a user's counters in a room, from the cache when it
// has them (every woken /sync of a room's members asks).
func (s *Service) storedCounts(ctx context.Context, userID, roomID string) ([]store.ThreadCounts, error) {
	k := countsKey{userID, roomID}
	if rows, ok := s.unread.Get(k); ok {
		return rows, nil
	}
	s.countsMu.RLock()
	defer s.countsMu.RUnlock()
	rows, err := s.store.UnreadPushCounts(ctx, userID, roomID)
	if err != nil {
		return nil, err
	}
	s.unread.PutCost(k, rows, unreadCost(k, rows))
	return rows, nil
}

// addNotifications stores notifications and adds what they counted to
// the cached counts (every message of a busy room changes every
// member's: dropping them would make each woken /sync query its own).
// It returns what was counted.
func (s *Service) addNotifications(ctx context.Context, ns []store.PushNotification) ([]store.UnreadDelta, error) {
	s.countsMu.Lock()
	defer s.countsMu.Unlock()
	deltas, err := s.store.AddPushNotifications(ctx, ns)
	if err != nil {
		// Whether the transaction committed is unknown: drop them.
		for _, n := range ns {
			s.unread.Remove(countsKey{n.UserID, n.RoomID})
		}
		return nil, err
	}
	for _, d := range deltas {
		k := countsKey{d.UserID, d.RoomID}
		old, ok := s.unread.Get(k)
		if !ok {
			continue
		}
		rows := make([]store.ThreadCounts, 0, len(old)+1)
		found := false
		for _, r := range old {
			if r.ThreadID == d.ThreadID {
				r.Notifications += d.Notifications
				r.Highlights += d.Highlights
				found = true
			}
			rows = append(rows, r)
		}
		if !found {
			rows = append(rows, d.ThreadCounts)
		}
		s.unread.PutCost(k, rows, unreadCost(k, rows))
	}
	return deltas, nil
}

// writeCounts runs a change of a user's stored counts in a room and
// drops the cached ones.
func (s *Service) writeCounts(userID, roomID string, write func() error) error {
	s.countsMu.Lock()
	defer s.countsMu.Unlock()
	err := write()
	s.unread.Remove(countsKey{userID, roomID})
	return err
}

// recentCountChanges remember, per user, the latest rooms whose counts
// changed and at which stream position.
type recentCountChanges struct {
	mu    sync.Mutex
	users *cache.LRU[string, *roomChanges]
}

// roomChanges are one user's recent count changes: every change after
// floor is in rooms, by room, at its latest position.
type roomChanges struct {
	floor int64
	rooms map[string]int64
}

// maxRecentRooms bounds the rooms remembered per user; the oldest go
// first and raise the floor.
const maxRecentRooms = 16

func (r *recentCountChanges) note(userID, roomID string, pos int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.users.Get(userID)
	if !ok {
		// Only changes from this one on are known.
		c = &roomChanges{floor: pos - 1, rooms: map[string]int64{}}
	}
	c.rooms[roomID] = max(c.rooms[roomID], pos)
	if len(c.rooms) > maxRecentRooms {
		oldest, at := "", int64(math.MaxInt64)
		for room, p := range c.rooms {
			if p < at {
				oldest, at = room, p
			}
		}
		delete(c.rooms, oldest)
		c.floor = max(c.floor, at)
	}
	r.users.PutCost(userID, c, len(c.rooms)+1)
}

// changed lists the rooms whose latest change is in (after, upto], as
// PushCountsChanged would; ok is false when memory cannot tell.
func (r *recentCountChanges) changed(userID string, after, upto int64) (rooms []string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, found := r.users.Get(userID)
	if !found || after < c.floor {
		return nil, false
	}
	for room, p := range c.rooms {
		if p > after && p <= upto {
			rooms = append(rooms, room)
		}
	}
	return rooms, true
}

// Thread IDs MarkRead takes besides a thread root's event ID.
const (
	// AllThreads is an unthreaded receipt: it reads every thread.
	AllThreads = ""
	// MainThread is a receipt for the main timeline only.
	MainThread = "main"
)

// MarkRead is a user's read receipt: their notifications in a room up to
// the event at eventStreamPos become read, in threadID (a thread root's
// event ID, MainThread, or AllThreads for an unthreaded receipt).
func (s *Service) MarkRead(ctx context.Context, userID, roomID, threadID string, eventStreamPos int64) error {
	var changed bool
	err := s.writeCounts(userID, roomID, func() error {
		var err error
		switch threadID {
		case AllThreads:
			changed, err = s.store.MarkPushRead(ctx, userID, roomID, "", true, eventStreamPos)
		case MainThread:
			changed, err = s.store.MarkPushRead(ctx, userID, roomID, "", false, eventStreamPos)
		default:
			changed, err = s.store.MarkPushRead(ctx, userID, roomID, threadID, false, eventStreamPos)
		}
		return err
	})
	if err == nil && changed {
		s.opts.Bus.Publish(ctx, CountsChanged{UserID: userID})
		// The user's phones show a badge of the unread count, which
		// reading (here or on another device) changes: tell them, as
		// Synapse does on receipts.
		s.deliver.enqueue(ctx, userID, nil, nil)
	}
	return err
}

// Notification is one entry of GET /notifications, before its event is
// rendered.
type Notification struct {
	ID        int64
	RoomID    string
	EventID   string
	Actions   json.RawMessage
	Read      bool
	TS        int64
	Highlight bool
}

// Notifications lists a user's notifications newest first, from a
// /notifications token ("" for the newest).
func (s *Service) Notifications(ctx context.Context, userID string, before int64, limit int, onlyHighlight bool) ([]Notification, error) {
	rows, err := s.store.PushNotifications(ctx, userID, before, limit, onlyHighlight)
	if err != nil {
		return nil, err
	}
	out := make([]Notification, len(rows))
	for i, r := range rows {
		out[i] = notificationOf(r)
	}
	return out, nil
}

func notificationOf(r store.PushNotification) Notification {
	return Notification{ID: r.EventPos, RoomID: r.RoomID, EventID: r.EventID, Actions: json.RawMessage(r.Actions),
		Read: !r.Unread, TS: r.TS, Highlight: r.Highlight}
}
