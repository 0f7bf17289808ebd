package push

import (
	"context"
	"encoding/json"

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
	rows, err := s.store.UnreadPushCounts(ctx, userID, roomID)
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
	return s.store.PushCountsChanged(ctx, userID, after, upto)
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
	var err error
	switch threadID {
	case AllThreads:
		changed, err = s.store.MarkPushRead(ctx, userID, roomID, "", true, eventStreamPos)
	case MainThread:
		changed, err = s.store.MarkPushRead(ctx, userID, roomID, "", false, eventStreamPos)
	default:
		changed, err = s.store.MarkPushRead(ctx, userID, roomID, threadID, false, eventStreamPos)
	}
	if err == nil && changed && s.OnChange != nil {
		s.OnChange(userID)
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
