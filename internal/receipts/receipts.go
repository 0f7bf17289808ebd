// Package receipts keeps read receipts: each user's latest receipt of
// each type (m.read, m.read.private) per room and thread. A receipt takes
// a position on the event stream, so that /sync sends what changed; a
// user's own receipt resets their unread counts; public receipts of
// local users go to the other servers in the room.
package receipts

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/cache"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// Receipt types.
const (
	Read        = "m.read"
	ReadPrivate = "m.read.private"
)

// Store is where receipts live.
type Store interface {
	PutReceipt(ctx context.Context, r store.Receipt) error
	UserReceipt(ctx context.Context, roomID, userID, typ, threadID string) (store.Receipt, error)
	RoomReceipts(ctx context.Context, roomID string, after, upto int64) ([]store.Receipt, error)
}

// ReadMarker is told of a user's own receipts (push: unread counts).
type ReadMarker interface {
	MarkRead(ctx context.Context, userID, roomID, threadID string, eventStreamPos int64) error
}

// Service stores and serves receipts.
type Service struct {
	store  Store
	engine *rooms.Engine
	marker ReadMarker
	now    func() time.Time
	// marks are each room's latest receipt, so that /sync skips the
	// query for rooms without new ones.
	marks *cache.Marks
	bus   bus.Bus
}

// Stored is published for every stored receipt (to wake the /sync
// requests of the room's local members).
type Stored struct {
	RoomID string `json:"room_id"`
}

// Local is published for a local user's public receipt, for federation.
type Local struct {
	RoomID   string `json:"room_id"`
	UserID   string `json:"user_id"`
	EventID  string `json:"event_id"`
	ThreadID string `json:"thread_id,omitempty"`
	TS       int64  `json:"ts"`
}

// Topics of the changes this package publishes.
const (
	TopicStored = "receipts.stored"
	TopicLocal  = "receipts.local"
)

// Topic implements bus.Change.
func (Stored) Topic() string { return TopicStored }

// Topic implements bus.Change.
func (Local) Topic() string { return TopicLocal }

// New makes the service; marker may be nil. It publishes Stored and
// Local on b.
func New(st Store, engine *rooms.Engine, marker ReadMarker, b bus.Bus) *Service {
	return &Service{store: st, engine: engine, marker: marker, bus: b, now: time.Now, marks: cache.NewMarks(engine.Stream().Current())}
}

// Put stores a local user's receipt for an event of a room they are in.
// A receipt for an event older than the user's current one is accepted
// and ignored, as Synapse does: receipts only move forward.
func (s *Service) Put(ctx context.Context, roomID, userID, typ, eventID, threadID string) error {
	if typ != Read && typ != ReadPrivate {
		return mxerr.InvalidParam("Unknown receipt type %q", typ)
	}
	// The engine's one visibility rule decides, as for /event: a receipt
	// for an event the user may not see (or a soft-failed one) is as for
	// an unknown event.
	ev, err := s.engine.VisibleEvent(ctx, roomID, eventID, userID)
	if err != nil {
		return err
	}
	if ev.StreamPos == 0 {
		// An out-of-band membership has no place in the timeline to mark.
		return mxerr.NotFound("Event not found")
	}
	r := store.Receipt{RoomID: roomID, UserID: userID, Type: typ, ThreadID: threadID, EventID: eventID, TS: s.now().UnixMilli()}
	stored, err := s.put(ctx, r, ev.StreamPos)
	if err != nil || !stored {
		return err
	}
	if s.marker != nil {
		if err := s.marker.MarkRead(ctx, userID, roomID, threadID, ev.StreamPos); err != nil {
			return err
		}
	}
	if typ == Read {
		s.bus.Publish(ctx, Local{RoomID: r.RoomID, UserID: r.UserID, EventID: r.EventID, ThreadID: r.ThreadID, TS: r.TS})
	}
	return nil
}

// PutRemote stores another server's user's public receipt.
func (s *Service) PutRemote(ctx context.Context, roomID, userID, eventID, threadID string, ts int64) error {
	pos := int64(0)
	if ev, err := s.engine.Event(ctx, eventID); err == nil && ev.RoomID().String() == roomID {
		pos = ev.StreamPos
	}
	_, err := s.put(ctx, store.Receipt{RoomID: roomID, UserID: userID, Type: Read, ThreadID: threadID, EventID: eventID, TS: ts}, pos)
	return err
}

// put stores a receipt unless the user's current one is for a later
// event (eventPos 0: an event this server does not have, always stored).
func (s *Service) put(ctx context.Context, r store.Receipt, eventPos int64) (bool, error) {
	old, err := s.store.UserReceipt(ctx, r.RoomID, r.UserID, r.Type, r.ThreadID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	if err == nil && eventPos != 0 {
		if prev, perr := s.engine.Event(ctx, old.EventID); perr == nil && prev.StreamPos >= eventPos {
			return false, nil
		}
	}
	stream := s.engine.Stream()
	r.StreamPos = stream.Next()
	if err := s.store.PutReceipt(ctx, r); err != nil {
		stream.Abandon(r.StreamPos)
		return false, err
	}
	s.marks.Note(r.RoomID, r.StreamPos)
	stream.Done(r.StreamPos)
	s.bus.Publish(ctx, Stored{RoomID: r.RoomID})
	return true, nil
}

// ForSync is the m.receipt content of a room for a viewer: receipts with
// positions in (after, upto] (all of them when after is 0, for an initial
// sync), private ones only the viewer's own. nil when there are none.
func (s *Service) ForSync(ctx context.Context, viewer, roomID string, after, upto int64) (json.RawMessage, error) {
	if after != 0 && s.marks.Unchanged(roomID, after) {
		return nil, nil
	}
	rs, err := s.store.RoomReceipts(ctx, roomID, after, upto)
	if err != nil || len(rs) == 0 {
		return nil, err
	}
	content := map[string]map[string]map[string]map[string]any{}
	for _, r := range rs {
		if r.Type == ReadPrivate && r.UserID != viewer {
			continue
		}
		byType := content[r.EventID]
		if byType == nil {
			byType = map[string]map[string]map[string]any{}
			content[r.EventID] = byType
		}
		if byType[r.Type] == nil {
			byType[r.Type] = map[string]map[string]any{}
		}
		data := map[string]any{"ts": r.TS}
		if r.ThreadID != "" {
			data["thread_id"] = r.ThreadID
		}
		byType[r.Type][r.UserID] = data
	}
	if len(content) == 0 {
		return nil, nil
	}
	return json.Marshal(content)
}

// ThreadOf checks a receipt's thread_id: "" (unthreaded), "main", or the
// ID of a thread root event.
func ThreadOf(threadID string) error {
	if threadID == "" || threadID == "main" || (len(threadID) > 1 && threadID[0] == '$') {
		return nil
	}
	return mxerr.InvalidParam("thread_id must be \"main\" or an event ID")
}
