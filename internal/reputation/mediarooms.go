package reputation

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/tidwall/gjson"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/ident"
	"github.com/myelin-chat/myelin/internal/queue"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// MediaRoomStore keeps which rooms media was posted in.
type MediaRoomStore interface {
	AddMediaRooms(ctx context.Context, ms []store.MediaRoom) error
	MediaRoomsOf(ctx context.Context, origin, mediaID string) ([]string, error)
}

// mediaPaths are where an event's content references media: a file,
// image, video, audio or sticker (url; file.url when encrypted), its
// thumbnail (info.thumbnail_url, info.thumbnail_file.url), a member's
// avatar (avatar_url) and a room's (m.room.avatar's url). The paths
// bound the work per event: nothing else of the content is read.
var mediaPaths = []string{"url", "file.url", "info.thumbnail_url", "info.thumbnail_file.url", "avatar_url"}

// mediaQueue bounds the media references waiting to be written: the
// engine's goroutine that publishes an event never waits for the
// database; under a flood the excess is counted and dropped.
const mediaQueue = 4096

// mediaBatch is how many references one transaction writes at most.
const mediaBatch = 256

// MediaRef is an mxc:// URI, split.
type MediaRef struct {
	Origin, MediaID string
}

// MediaOf reads the media an event's content references (mediaPaths),
// each at most once; references that are not mxc://server/id with a
// server and an ID storable as identifiers are left out.
func MediaOf(content []byte) []MediaRef {
	if !bytes.Contains(content, []byte("mxc://")) {
		return nil
	}
	var out []MediaRef
	for _, r := range gjson.GetManyBytes(content, mediaPaths...) {
		if r.Type != gjson.String {
			continue
		}
		ref, ok := parseMXC(r.Str)
		if ok && !containsRef(out, ref) {
			out = append(out, ref)
		}
	}
	return out
}

func containsRef(refs []MediaRef, r MediaRef) bool {
	for _, x := range refs {
		if x == r {
			return true
		}
	}
	return false
}

func parseMXC(uri string) (MediaRef, bool) {
	rest, ok := strings.CutPrefix(uri, "mxc://")
	if !ok {
		return MediaRef{}, false
	}
	origin, mediaID, ok := strings.Cut(rest, "/")
	if !ok || origin == "" || mediaID == "" || strings.ContainsAny(mediaID, "/?#") ||
		ident.CheckID(origin) != nil || ident.CheckID(mediaID) != nil {
		return MediaRef{}, false
	}
	return MediaRef{Origin: origin, MediaID: mediaID}, true
}

// MediaRooms is the index of which rooms media was posted in, so that a
// feed listing a room takes its media down (ActionMedia on KindRoom;
// Points.RefusesMedia): it hears every event the engine stores, local
// or received over federation (rooms.TopicEvent), and writes the media
// each references with its room, in batches, off the engine's path.
type MediaRooms struct {
	store   MediaRoomStore
	log     *slog.Logger
	queue   *queue.Queue[store.MediaRoom]
	dropped atomic.Int64

	// state and serverName, when set (WithJoinState), index the room
	// avatar of rooms this server's users join: joins queues the rooms.
	state      RoomStateReader
	serverName string
	joins      chan string
}

// RoomStateReader reads a room's current state (rooms.Engine).
type RoomStateReader interface {
	CurrentState(ctx context.Context, roomID string) (rooms.StateMap, error)
	StateEvent(ctx context.Context, state rooms.StateMap, typ, stateKey string) (*rooms.Event, error)
}

// MediaRoomsOption configures the index.
type MediaRoomsOption func(*MediaRooms)

// WithJoinState indexes the room avatar of each room a user of
// serverName joins, read from the room's current state: a room joined
// over federation brings its state with the join, not as new events,
// so an avatar set before the join is never heard as an event. Member
// avatars of that state are the users' profile media, not the room's,
// and are left out.
func WithJoinState(r RoomStateReader, serverName string) MediaRoomsOption {
	return func(m *MediaRooms) { m.state, m.serverName = r, serverName }
}

// joinQueue bounds the joined rooms waiting for their avatar to be read.
const joinQueue = 256

// NewMediaRooms makes the index and subscribes it to new events; Run
// writes it.
func NewMediaRooms(s MediaRoomStore, b bus.Bus, log *slog.Logger, opts ...MediaRoomsOption) *MediaRooms {
	m := &MediaRooms{store: s, log: log, queue: queue.New[store.MediaRoom](mediaQueue)}
	for _, o := range opts {
		o(m)
	}
	if m.state != nil {
		m.joins = make(chan string, joinQueue)
	}
	b.Subscribe("reputation-media-rooms", func(_ context.Context, c bus.Change) {
		if n, ok := c.(rooms.Notification); ok {
			m.Posted(n.Event.RoomID().String(), n.Event.Content())
			m.joined(n)
		}
	}, rooms.TopicEvent)
	return m
}

// joined queues the room of a local user's join for Run to read its
// avatar from the state (WithJoinState); a full queue drops it, counted.
func (m *MediaRooms) joined(n rooms.Notification) {
	if m.joins == nil || n.Membership != "join" || n.PrevMembership == "join" {
		return
	}
	if key := n.Event.StateKey(); key == nil || !strings.HasSuffix(*key, ":"+m.serverName) {
		return
	}
	select {
	case m.joins <- n.Event.RoomID().String():
	default:
		m.dropped.Add(1)
	}
}

// indexAvatar indexes the current m.room.avatar of a room.
func (m *MediaRooms) indexAvatar(ctx context.Context, roomID string) {
	state, err := m.state.CurrentState(ctx, roomID)
	if err == nil {
		var ev *rooms.Event
		if ev, err = m.state.StateEvent(ctx, state, "m.room.avatar", ""); err == nil && ev != nil {
			m.Posted(roomID, ev.Content())
		}
	}
	if err != nil && ctx.Err() == nil {
		m.log.Warn("reputation: reading a joined room's avatar", "err", err, "room_id", roomID)
	}
}

// Posted queues the media an event's content references, posted in
// roomID; a full queue drops them (counted in Dropped).
func (m *MediaRooms) Posted(roomID string, content []byte) {
	for _, ref := range MediaOf(content) {
		if !m.queue.TryPush(store.MediaRoom{Origin: ref.Origin, MediaID: ref.MediaID, RoomID: roomID}) {
			m.dropped.Add(1)
		}
	}
}

// Dropped is how many references a full queue dropped since start.
func (m *MediaRooms) Dropped() int64 { return m.dropped.Load() }

// RoomsOf lists the rooms mxc://origin/mediaID was posted in.
func (m *MediaRooms) RoomsOf(ctx context.Context, origin, mediaID string) ([]string, error) {
	return m.store.MediaRoomsOf(ctx, origin, mediaID)
}

// Run writes queued references in batches until ctx ends.
func (m *MediaRooms) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case roomID := <-m.joins:
			m.indexAvatar(ctx, roomID)
		case <-m.queue.Ready():
			batch := m.queue.Take(mediaBatch)
			if len(batch) == 0 {
				continue
			}
			if err := m.store.AddMediaRooms(ctx, batch); err != nil && ctx.Err() == nil {
				m.log.Warn("reputation: recording the rooms media was posted in", "err", err, "refs", len(batch))
			}
		}
	}
}
