package push

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/pushrules"

	"github.com/myelin-chat/myelin/internal/ident"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// evaluated is one event's outcome: the notifications it makes, with
// the actions to push for each.
type evaluated struct {
	ev        *rooms.Event
	notes     []store.PushNotification
	actionsOf []pushrules.PushActionArray
}

// evaluate runs one event through the push rules of every local member
// of its room but its sender.
func (s *Service) evaluate(ctx context.Context, n rooms.Notification) (evaluated, error) {
	ev := n.Event
	out := evaluated{ev: ev}
	// The events the server's reputation feeds hide from every local
	// user notify nobody: the read paths' rule (rooms.Visibility.CanSee).
	if s.rooms.HiddenByReputation(ctx, ev) {
		return out, nil
	}
	members, err := s.members(ctx, ev)
	if err != nil {
		return out, err
	}
	users := s.recipients(ev, members, n.Membership)
	if len(users) == 0 {
		return out, nil
	}
	mev := toMautrix(ev)
	room := &roomContext{s: s, ctx: ctx, ev: ev, memberCount: members.joined}
	thread := threadOf(mev)
	now := time.Now().UnixMilli()
	// The default rules differ between users only by the user's ID
	// (mentions, invites), so for every user with default rules whom the
	// event neither mentions nor concerns one evaluation serves all:
	// a message in a big room costs one evaluation, not one per member.
	mentioned := mentionedUsers(ev)
	roomID, eventID := ev.RoomID().String(), ev.EventID()
	var sharedJSON string
	var shared pushrules.PushActionArray
	sharedDone := false
	// In a room of ordinary messages nearly every member is notified:
	// growing the slices member by member copied them several times.
	out.notes = make([]store.PushNotification, 0, len(users))
	out.actionsOf = make([]pushrules.PushActionArray, 0, len(users))
	for _, u := range users {
		ignored, err := s.accountData.IgnoredUsers(ctx, u)
		if err != nil {
			return out, err
		}
		// Unlike read paths (rooms.IgnoredSender), state events of an
		// ignored user notify nobody either: an invite from them is
		// hidden from /sync, so it must not ring.
		if ignored[ev.Sender()] {
			continue
		}
		// Nor do the events and invites the user's own reputation
		// filter hides from them (counted there for their extent report).
		if s.rooms.ArrivedFor(ctx, u, ev) {
			continue
		}
		if hidden, err := s.hidesInvite(ctx, ev, u); err != nil {
			return out, err
		} else if hidden {
			continue
		}
		rs, err := s.ruleset(ctx, u)
		if err != nil {
			return out, err
		}
		var actions pushrules.PushActionArray
		fromShared := false
		// A reply in a thread notifies by the user's subscription to
		// it (MSC4306), which differs between users.
		if rs.isDefault && !mentioned[u] && ev.Type() != spec.MRoomMember && (thread == "" || s.opts.ThreadSubscriptions == nil) {
			if !sharedDone {
				shared, sharedDone = genericRules().GetActions(&userRoom{roomContext: room, user: nobody}, mev), true
			}
			actions, fromShared = shared, true
		} else {
			actions = rs.rules.GetActions(&userRoom{roomContext: room, user: u}, mev)
		}
		should := actions.Should()
		if !should.Notify {
			continue
		}
		var actionsJSON string
		if fromShared {
			if sharedJSON == "" {
				sharedJSON = string(marshalActions(shared))
			}
			actionsJSON = sharedJSON
		} else {
			actionsJSON = string(marshalActions(actions))
		}
		out.notes = append(out.notes, store.PushNotification{UserID: u, RoomID: roomID, ThreadID: thread,
			EventID: eventID, EventPos: ev.StreamPos, Actions: actionsJSON, Highlight: should.Highlight, TS: now})
		out.actionsOf = append(out.actionsOf, actions)
	}
	return out, nil
}

// store writes a batch of events' notifications in one transaction
// (one per event made push the busiest writer of a busy room), then
// wakes the users and hands the notifications to the pushers.
func (s *Service) storeBatch(ctx context.Context, batch []evaluated) error {
	total := 0
	for _, e := range batch {
		total += len(e.notes)
	}
	all := make([]store.PushNotification, 0, total)
	for _, e := range batch {
		all = append(all, e.notes...)
	}
	if len(all) == 0 {
		return nil
	}
	// The counts change after the events' own positions, which a /sync
	// may already have passed: they take a position of their own.
	pos := s.stream.Next()
	for i := range all {
		all[i].CountedPos = pos
	}
	counted, err := s.addNotifications(ctx, all)
	if err != nil {
		s.stream.Abandon(pos)
		return err
	}
	for _, d := range counted {
		s.countMarks.Note(d.UserID, pos)
		s.recentCounts.note(d.UserID, d.RoomID, pos)
	}
	s.stream.Done(pos)
	if !s.stream.WaitReadable(ctx, pos) {
		return nil
	}
	woken := map[string]bool{}
	for _, e := range batch {
		for i, note := range e.notes {
			if !woken[note.UserID] {
				woken[note.UserID] = true
				s.opts.Bus.Publish(ctx, CountsChanged{UserID: note.UserID})
			}
			s.deliver.enqueue(ctx, note.UserID, e.ev, e.actionsOf[i])
		}
	}
	return nil
}

// recipients are the local users an event may notify: the room's joined
// local members but the sender, and a local user it invites (Synapse's
// bulk push rule evaluator does the same).
func (s *Service) recipients(ev *rooms.Event, members roomMembers, membership string) []string {
	local := ":" + s.opts.ServerName
	sender := ev.Sender()
	users := make([]string, 0, len(members.local))
	for _, u := range members.local {
		if u != sender {
			users = append(users, u)
		}
	}
	if ev.Type() == spec.MRoomMember && membership == spec.Invite && ev.StateKey() != nil {
		if target := *ev.StateKey(); target != sender && strings.HasSuffix(target, local) {
			users = append(users, target)
		}
	}
	return users
}

// toMautrix is the event in the evaluator's form; only the fields push
// rules can look at are filled in.
func toMautrix(ev *rooms.Event) *event.Event {
	m := &event.Event{
		ID: id.EventID(ev.EventID()), RoomID: id.RoomID(ev.RoomID().String()), Sender: id.UserID(ev.Sender()),
		Type: event.Type{Type: ev.Type(), Class: event.MessageEventType}, StateKey: ev.StateKey(),
		Timestamp: int64(ev.OriginServerTS()),
	}
	if ev.StateKey() != nil {
		m.Type.Class = event.StateEventType
	}
	// Content the sender made unparseable matches no content condition.
	_ = m.Content.UnmarshalJSON(ev.Content())
	return m
}

// threadOf is the thread root an event belongs to ("" for the main
// timeline), from an m.thread relation.
func threadOf(m *event.Event) string {
	rel, _ := m.Content.Raw["m.relates_to"].(map[string]any)
	if rel["rel_type"] == "m.thread" {
		// A root that cannot be an event ID is no thread (as the room
		// engine reads relations): the main timeline counts it.
		if root, ok := rel["event_id"].(string); ok && ident.CheckID(root) == nil {
			return root
		}
	}
	return ""
}

// roomContext is what the evaluator asks of an event's room, loaded
// lazily once per event: most events match a rule before any condition
// needs the member count, power levels or display names.
type roomContext struct {
	s   *Service
	ctx context.Context
	ev  *rooms.Event

	state       rooms.StateMap
	stateLoaded bool

	// memberCount is the room's joined members when the event was
	// evaluated.
	memberCount int

	pl       *event.PowerLevelsEventContent
	plLoaded bool
}

// stateBefore is the room state the event was sent in.
func (r *roomContext) stateBefore() rooms.StateMap {
	if !r.stateLoaded {
		r.stateLoaded = true
		if r.ev.HasState() {
			r.state, _ = r.s.rooms.StateAt(r.ctx, r.ev.StateBefore)
		}
	}
	return r.state
}

func (r *roomContext) stateEvent(typ, key string) *rooms.Event {
	st := r.stateBefore()
	if st == nil {
		return nil
	}
	ev, err := r.s.rooms.StateEvent(r.ctx, st, typ, key)
	if err != nil {
		return nil
	}
	return ev
}

// GetMemberCount is the room's joined member count (room_member_count).
func (r *roomContext) GetMemberCount() int { return r.memberCount }

// GetPowerLevels are the power levels the event was sent under, for
// sender_notification_permission; room creators outrank everyone in
// room versions that say so, which needs the create event.
func (r *roomContext) GetPowerLevels() *event.PowerLevelsEventContent {
	if r.plLoaded {
		return r.pl
	}
	r.plLoaded = true
	plEv := r.stateEvent(spec.MRoomPowerLevels, "")
	if plEv == nil {
		return nil
	}
	pl := &event.PowerLevelsEventContent{}
	if json.Unmarshal(plEv.Content(), pl) != nil {
		return nil
	}
	if create := r.stateEvent(spec.MRoomCreate, ""); create != nil {
		cev := toMautrix(create)
		if cev.Content.ParseRaw(event.StateCreate) == nil {
			pl.CreateEvent = cev
		}
	}
	r.pl = pl
	return pl
}

// GetEvent loads an event for related_event_match (MSC3664).
func (r *roomContext) GetEvent(eventID id.EventID) *event.Event {
	ev, err := r.s.rooms.Event(r.ctx, string(eventID))
	if err != nil || ev.RoomID().String() != r.ev.RoomID().String() {
		return nil
	}
	return toMautrix(ev)
}

// userRoom is the room as one user's evaluation sees it.
type userRoom struct {
	*roomContext
	user string
}

// GetOwnDisplayname is the user's display name in the room, for the
// (deprecated) contains_display_name condition.
func (u *userRoom) GetOwnDisplayname() string {
	return displayName(u.stateEvent(spec.MRoomMember, u.user))
}

func displayName(member *rooms.Event) string {
	if member == nil {
		return ""
	}
	var c struct {
		DisplayName string `json:"displayname"`
	}
	_ = json.Unmarshal(member.Content(), &c)
	return c.DisplayName
}

// marshalActions writes actions as the spec spells them: a tweak without
// a value (highlight) has no "value" key, where the evaluator's own
// encoding would write null.
func marshalActions(actions pushrules.PushActionArray) json.RawMessage {
	out := make([]any, 0, len(actions))
	for _, a := range actions {
		switch {
		case a.Action != pushrules.ActionSetTweak:
			out = append(out, string(a.Action))
		case a.Value == nil:
			out = append(out, map[string]any{"set_tweak": a.Tweak})
		default:
			out = append(out, map[string]any{"set_tweak": a.Tweak, "value": a.Value})
		}
	}
	raw, _ := json.Marshal(out)
	return raw
}

// genericRules are the default rules of nobody, built once.
var genericRules = sync.OnceValue(func() *compiledRules {
	rs, bad, err := evaluatorRules(defaultRules(nobody))
	if err != nil || len(bad) > 0 {
		panic(fmt.Sprintf("push: the default rules do not parse: %v %v", err, bad))
	}
	compiled, _ := compileRules(rs, DefaultLimits)
	return compiled
})

// nobody is a user ID no event can mention or concern.
const nobody = "@\x00:invalid"

// mentionedUsers are the users an event's m.mentions names.
func mentionedUsers(ev *rooms.Event) map[string]bool {
	var c struct {
		Mentions struct {
			UserIDs []any `json:"user_ids"`
		} `json:"m.mentions"`
	}
	if json.Unmarshal(ev.Content(), &c) != nil {
		return nil
	}
	out := map[string]bool{}
	for _, u := range c.Mentions.UserIDs {
		if s, ok := u.(string); ok {
			out[s] = true
		}
	}
	return out
}

// hidesInvite reports whether ev is an invite of u that u's invite
// permission ignores or blocks (an invite from another server that
// arrived before the block): it is not shown, so it must not ring.
func (s *Service) hidesInvite(ctx context.Context, ev *rooms.Event, u string) (bool, error) {
	if s.opts.Invites == nil || ev.Type() != spec.MRoomMember || ev.StateKey() == nil || *ev.StateKey() != u {
		return false, nil
	}
	if m, _ := ev.Membership(); m != spec.Invite {
		return false, nil
	}
	return s.opts.Invites.Hides(ctx, u, ev.Sender())
}
