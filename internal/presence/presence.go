// Package presence owns users' presence (spec "Presence"): whether they
// are online, idle (unavailable) or offline, when they were last active
// and their status message. Local users' presence follows their syncs,
// their actions and their own settings, with Synapse's timeouts; remote
// users' presence is what their servers send in m.presence EDUs. Every
// change clients must see takes a position in the event stream, so that
// /sync delivers it with the same tokens as events.
package presence

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/cache"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// Presence states (spec "Presence").
const (
	Online      = "online"
	Unavailable = "unavailable"
	Offline     = "offline"
)

// Synapse's timers (synapse/handlers/presence.py).
const (
	// LastActiveGranularity: a user active within it is currently_active,
	// and last-active bumps closer together than it are not announced.
	LastActiveGranularity = time.Minute
	// SyncOnlineTimeout: a local user with no sync in progress and none
	// (nor any activity) for this long goes offline.
	SyncOnlineTimeout = 30 * time.Second
	// IdleTimer: an online local user inactive for this long goes
	// unavailable.
	IdleTimer = 5 * time.Minute
	// FederationTimeout: a remote user whose server said nothing for this
	// long goes offline (protects against servers that forget to say so).
	FederationTimeout = 30 * time.Minute
	// FederationPingInterval: local users who are not offline are sent to
	// other servers again at least this often, ahead of their timeout.
	FederationPingInterval = 25 * time.Minute
)

// Store is the storage presence needs.
type Store interface {
	PutPresence(ctx context.Context, p store.Presence) error
	TouchPresence(ctx context.Context, p store.Presence) error
	GetPresence(ctx context.Context, userID string) (store.Presence, error)
	PresenceNotOffline(ctx context.Context) ([]store.Presence, error)
	PresenceChanges(ctx context.Context, viewer string, after, upto int64) ([]store.Presence, error)
	ShareRoom(ctx context.Context, a, b string) (bool, error)
	MembershipsOf(ctx context.Context, userID string, memberships ...string) ([]store.RoomMembership, error)
}

// Options configure the service.
type Options struct {
	ServerName string
	// Bus carries Changed (a user's presence changed, readable at the
	// stream's current position: wake the /sync of the users sharing a
	// room with them) and Push (a local user's presence, for the servers
	// sharing a room with them). Nil: a bus nobody listens to.
	Bus bus.Bus
	// Enabled is config presence.enabled; off, the service keeps and
	// sends nothing and everyone reads as offline.
	Enabled bool
	Store   Store
	// Stream is the room engine's stream, whose positions changes take.
	Stream *rooms.StreamGen
	Log    *slog.Logger
	// Now is the clock (tests move it); nil is time.Now.
	Now func() time.Time
	// MaxStatusMsgBytes bounds a status_msg another server sends (the
	// client API bounds local ones); 0 is unbounded.
	MaxStatusMsgBytes int
}

// Content is a presence event's content, and the answer of GET
// /presence/{userId}/status.
type Content struct {
	Presence        string  `json:"presence"`
	LastActiveAgo   *int64  `json:"last_active_ago,omitempty"`
	StatusMsg       *string `json:"status_msg,omitempty"`
	CurrentlyActive *bool   `json:"currently_active,omitempty"`
}

// Event is an m.presence event as /sync delivers it.
type Event struct {
	Type    string  `json:"type"`
	Sender  string  `json:"sender"`
	Content Content `json:"content"`
}

// Push is one user's presence as the m.presence EDU carries it.
type Push struct {
	UserID          string  `json:"user_id"`
	Presence        string  `json:"presence"`
	LastActiveAgo   *int64  `json:"last_active_ago,omitempty"`
	StatusMsg       *string `json:"status_msg,omitempty"`
	CurrentlyActive bool    `json:"currently_active"`
}

// Changed is published when a user's presence changed, once the change
// is readable at the stream's current position.
type Changed struct {
	UserID string `json:"user_id"`
}

// Topics of the changes this package publishes: Changed, and Push for a
// local user's presence to send to other servers.
const (
	TopicChanged = "presence.changed"
	TopicLocal   = "presence.local"
)

// Topic implements bus.Change.
func (Changed) Topic() string { return TopicChanged }

// Topic implements bus.Change.
func (Push) Topic() string { return TopicLocal }

// Service is the presence service. It keeps the users whose presence is
// not offline (and those with unsaved timestamps) in memory, which is
// what makes a sync's or an action's update cheap: most only move a
// timestamp there, and only changes clients must see are written.
type Service struct {
	o Options
	// marks holds the latest presence change of anyone (key ""), so that
	// /sync skips the query when no one's presence changed.
	marks *cache.Marks

	mu    sync.Mutex
	users map[string]store.Presence
	// syncing counts each local user's syncs in progress: a user with one
	// never times out to offline (Synapse's user_to_num_current_syncs).
	syncing map[string]int
	// dirty are users whose timestamps changed in memory only (true), or
	// whose whole state failed to be written and must be again (false).
	dirty map[string]bool
	// evictions counts evictions from users, so that a load from the
	// database racing one can tell its result may be stale.
	evictions int64
	// recent holds the latest changes, which most /sync windows need.
	recent *recent
	// mates tells /sync's viewers who shares a room with them.
	mates *roommates
}

// New makes the service; it watches timeouts once Run runs.
func New(o Options) *Service {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Bus == nil {
		o.Bus = bus.New()
	}
	start := int64(0)
	if o.Stream != nil {
		start = o.Stream.Current()
	}
	s := &Service{o: o, users: map[string]store.Presence{}, syncing: map[string]int{}, dirty: map[string]bool{},
		marks: cache.NewMarks(start), recent: newRecent(start, recentCap), mates: newRoommates(o.Store)}
	if o.Enabled {
		o.Bus.Subscribe("presence-roommates", func(ctx context.Context, c bus.Change) { s.mates.heard(ctx, c, o.ServerName) },
			rooms.TopicEvent, rooms.TopicPartialStateCompleted)
	}
	return s
}

// Enabled reports whether presence is on (config presence.enabled).
func (s *Service) Enabled() bool { return s.o.Enabled }

func (s *Service) now() int64 { return s.o.Now().UnixMilli() }

func (s *Service) isLocal(userID string) bool { return userServer(userID) == s.o.ServerName }

func validState(p string) bool { return p == Online || p == Unavailable || p == Offline }

// Set is PUT /presence/{userId}/status for a local user: the state and
// status message replace the old ones (no status_msg clears it, as in
// Synapse), and online counts as activity.
func (s *Service) Set(ctx context.Context, userID, presence string, statusMsg *string) error {
	if !validState(presence) {
		return mxerr.InvalidParam("Invalid presence state %q", presence)
	}
	if !s.o.Enabled {
		// Synapse with use_presence: false accepts and ignores it.
		return nil
	}
	return s.apply(ctx, userID, func(p *store.Presence, now int64) {
		p.Presence, p.StatusMsg = presence, statusMsg
		if presence == Online {
			p.LastActiveTS = now
		}
	})
}

// SetFromSync is called by /sync at the start of every request with its
// set_presence parameter ("" means online), and returns the function to
// call when the request ends. While any sync of a user is in progress
// the user does not time out to offline, and the end of a sync counts as
// seeing the client (Synapse's user_syncing). "offline" leaves presence
// alone (a client that does not want to appear online); "online" brings
// an offline user online but leaves an idle one unavailable, which only
// activity ends (spec "Idle timeout"); "unavailable" makes the user so.
// Any other value is M_INVALID_PARAM, as Synapse answers.
func (s *Service) SetFromSync(ctx context.Context, userID, setPresence string) (done func(), err error) {
	if setPresence == "" {
		setPresence = Online
	}
	if !validState(setPresence) {
		return func() {}, mxerr.InvalidParam("set_presence must be online, unavailable or offline")
	}
	if !s.o.Enabled || setPresence == Offline {
		return func() {}, nil
	}
	s.mu.Lock()
	s.syncing[userID]++
	s.mu.Unlock()
	// The request's context ends with it; the end of a sync must still
	// be recorded.
	bg := context.WithoutCancel(ctx)
	var once sync.Once
	done = func() {
		once.Do(func() {
			s.mu.Lock()
			if s.syncing[userID]--; s.syncing[userID] <= 0 {
				delete(s.syncing, userID)
			}
			s.mu.Unlock()
			if err := s.apply(bg, userID, func(p *store.Presence, now int64) { p.LastUserSyncTS = now }); err != nil {
				s.o.Log.Warn("presence: end of a sync", "user_id", userID, "err", err)
			}
		})
	}
	err = s.apply(ctx, userID, func(p *store.Presence, now int64) {
		p.LastUserSyncTS = now
		switch {
		case setPresence == Online && p.Presence == Offline:
			p.Presence, p.LastActiveTS = Online, now
		case setPresence == Unavailable:
			p.Presence = Unavailable
		}
	})
	return done, err
}

// Activity records that a local user did something (sent an event): it
// bumps their last active time and ends their idleness (Synapse's
// bump_presence_active_time). Cheap: most calls only touch memory.
func (s *Service) Activity(ctx context.Context, userID string) error {
	if !s.o.Enabled {
		return nil
	}
	return s.apply(ctx, userID, func(p *store.Presence, now int64) {
		p.LastActiveTS = now
		if p.Presence == Unavailable {
			p.Presence = Online
		}
	})
}

// JoinedRooms lists the rooms a user is joined to, from the cache that
// answers /sync's roommate checks, loading them on a miss. The slice is
// shared: not to be changed.
func (s *Service) JoinedRooms(ctx context.Context, userID string) ([]string, error) {
	return s.mates.joinedRooms(ctx, userID)
}

// CachedJoinedRooms is JoinedRooms when that cache holds the user's
// rooms (ok false otherwise), without asking the database.
func (s *Service) CachedJoinedRooms(userID string) (rooms []string, ok bool) {
	return s.mates.cachedRooms(userID)
}

// Get is GET /presence/{userId}/status: the viewer must share a room
// with the user or be the user (M_FORBIDDEN otherwise, as Synapse); a
// remote user nobody told this server about is M_NOT_FOUND. With
// presence off everyone is offline, as in Synapse.
func (s *Service) Get(ctx context.Context, viewer, userID string) (Content, error) {
	if !s.o.Enabled {
		return Content{Presence: Offline}, nil
	}
	if viewer != userID {
		ok, err := s.o.Store.ShareRoom(ctx, viewer, userID)
		if err != nil {
			return Content{}, err
		}
		if !ok {
			return Content{}, mxerr.Forbidden("You are not allowed to see their presence")
		}
	}
	p, found, err := s.lookup(ctx, userID)
	if err != nil {
		return Content{}, err
	}
	if !found && !s.isLocal(userID) {
		return Content{}, mxerr.NotFound("No presence known for %s", userID)
	}
	return content(p, s.now()), nil
}

// Changes lists, for /sync, the presence of the viewer and of the users
// who share a joined room with the viewer, changed at positions in
// (after, upto]. after == 0 (an initial sync) gives everyone's current
// presence, as Synapse does (users never seen have none to give). A
// window the in-memory ring covers is answered from it and from the
// roommates held in memory; the answer is StoredChanges'.
func (s *Service) Changes(ctx context.Context, viewer string, after, upto int64) ([]Event, error) {
	if !s.o.Enabled || upto <= after || (after != 0 && s.marks.Unchanged("", after)) {
		return nil, nil
	}
	if after == 0 {
		return s.StoredChanges(ctx, viewer, after, upto)
	}
	s.mu.Lock()
	changed, covered := s.recent.window(after, upto)
	s.mu.Unlock()
	if !covered {
		return s.StoredChanges(ctx, viewer, after, upto)
	}
	if len(changed) == 0 {
		return nil, nil
	}
	// The viewer's rooms once, each changed user's against them: a
	// window of a busy server holds the changes of many users.
	mine, err := s.mates.roomSet(ctx, viewer)
	if err != nil {
		return nil, err
	}
	rows := changed[:0]
	for _, r := range changed {
		if r.UserID != viewer {
			ok, err := s.mates.inAny(ctx, r.UserID, mine)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
		}
		rows = append(rows, r)
	}
	return s.events(rows), nil
}

// StoredChanges is Changes asked of the database: for windows older
// than the ring, initial syncs, and tests that hold the ring to it.
func (s *Service) StoredChanges(ctx context.Context, viewer string, after, upto int64) ([]Event, error) {
	if !s.o.Enabled || upto <= after {
		return nil, nil
	}
	rows, err := s.o.Store.PresenceChanges(ctx, viewer, after, upto)
	if err != nil {
		return nil, err
	}
	return s.events(rows), nil
}

func (s *Service) events(rows []store.Presence) []Event {
	if len(rows) == 0 {
		return nil
	}
	now := s.now()
	out := make([]Event, 0, len(rows))
	s.mu.Lock()
	for _, r := range rows {
		// Memory holds the same change with fresher timestamps.
		if m, ok := s.users[r.UserID]; ok && m.StreamPos == r.StreamPos {
			r = m
		}
		out = append(out, Event{Type: "m.presence", Sender: r.UserID, Content: content(r, now)})
	}
	s.mu.Unlock()
	return out
}

// Current is the presence of users now, whenever it last changed: what
// an incremental /sync gives of the users who newly share a room with
// its user (Synapse's newly joined users and rooms). Users with no
// presence known are left out, as in an initial sync.
func (s *Service) Current(ctx context.Context, userIDs []string) ([]Event, error) {
	if !s.o.Enabled {
		return nil, nil
	}
	now := s.now()
	var out []Event
	for _, u := range userIDs {
		p, found, err := s.lookup(ctx, u)
		if err != nil {
			return nil, err
		}
		if found {
			out = append(out, Event{Type: "m.presence", Sender: u, Content: content(p, now)})
		}
	}
	return out, nil
}

// LocalPush is a local user's presence as other servers get it, false
// when the user is offline (or presence is off): what a server that
// newly shares a room with the user is sent.
func (s *Service) LocalPush(ctx context.Context, userID string) (Push, bool, error) {
	if !s.o.Enabled || !s.isLocal(userID) {
		return Push{}, false, nil
	}
	p, _, err := s.lookup(ctx, userID)
	if err != nil || p.Presence == Offline {
		return Push{}, false, err
	}
	return push(p, s.now()), true, nil
}

// lookup reads a user's presence from memory or the database; a user
// with none stored is offline, found false.
func (s *Service) lookup(ctx context.Context, userID string) (store.Presence, bool, error) {
	s.mu.Lock()
	p, ok := s.users[userID]
	s.mu.Unlock()
	if ok {
		return p, true, nil
	}
	p, err := s.o.Store.GetPresence(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Presence{UserID: userID, Presence: Offline}, false, nil
	}
	return p, err == nil, err
}

// content renders a presence for clients as Synapse's
// format_user_presence_state: last_active_ago only when the user was
// ever active, currently_active only when online.
func content(p store.Presence, now int64) Content {
	c := Content{Presence: p.Presence}
	if p.LastActiveTS > 0 {
		ago := max(now-p.LastActiveTS, 0)
		c.LastActiveAgo = &ago
	}
	if p.StatusMsg != nil && *p.StatusMsg != "" {
		msg := *p.StatusMsg
		c.StatusMsg = &msg
	}
	if p.Presence == Online {
		active := p.CurrentlyActive
		c.CurrentlyActive = &active
	}
	return c
}

func push(p store.Presence, now int64) Push {
	c := content(p, now)
	return Push{UserID: p.UserID, Presence: p.Presence, LastActiveAgo: c.LastActiveAgo, StatusMsg: c.StatusMsg, CurrentlyActive: p.CurrentlyActive && p.Presence == Online}
}
