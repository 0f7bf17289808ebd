package slidingsync

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
	"github.com/myelin-chat/myelin/internal/store"
)

// rooms adds the wanted rooms that the connection lacks or that changed
// since it was last sent them.
func (p *pass) rooms(ctx context.Context) error {
	var active map[string]bool
	var counts map[string]bool
	if p.prev != nil {
		var err error
		if active, err = p.s.sync.ActiveRooms(ctx, p.after, p.upto); err != nil {
			return err
		}
		if ps := p.s.sync.Streams().Push; ps != nil {
			changed, err := ps.CountsChanged(ctx, p.req.UserID, p.after, p.upto)
			if err != nil {
				return err
			}
			counts = map[string]bool{}
			for _, id := range changed {
				counts[id] = true
			}
		}
	}
	vis := p.s.engine.VisibilityFor(p.req.UserID)
	for _, id := range p.order {
		w := p.wanted[id]
		var err error
		switch w.e.Membership {
		case spec.Join, peek:
			err = p.joinedRoom(ctx, vis, w, active[id], counts[id])
		case spec.Leave, spec.Ban:
			err = p.leftRoom(ctx, vis, w)
		default:
			err = p.strippedRoom(ctx, w.e)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// leftRoom sends, once, a room the user left (or was kicked or banned
// from, or whose invite was rejected or withdrawn) since it was sent:
// its timeline up to the user's membership event, which is always there
// (the user may see their own membership), and the state the connection
// lacks as of then.
func (p *pass) leftRoom(ctx context.Context, vis *rooms.Visibility, w *want) error {
	e := w.e
	sent := p.next.rooms[e.RoomID]
	room := &Room{BumpStamp: e.bump}
	next := sent.clone()
	next.membership, next.memberNID, next.upto = e.Membership, e.EventNID, p.upto
	if next.state == nil {
		next.state = map[roommodel.StateKey]int64{}
	}
	var tl []*rooms.Event
	if sent.membership == spec.Join && w.timeline > 0 {
		var err error
		var limited bool
		if tl, limited, room.PrevBatch, err = p.s.sync.RoomTimeline(ctx, p.req.UserID, vis, e.RoomID, sent.upto, e.memberPos, w.timeline); err != nil {
			return err
		}
		room.Limited = limited
	}
	if len(tl) == 0 || tl[len(tl)-1].NID != e.EventNID {
		own, err := p.s.engine.EventsByNID(ctx, []int64{e.EventNID})
		if err != nil {
			return err
		}
		tl = append(tl, own...)
	}
	live := len(tl)
	room.NumLive = &live
	var err error
	if room.Timeline, err = p.s.render.Render(ctx, tl, p.req.Viewer, p.req.UserID, true); err != nil {
		return err
	}
	if sent.membership == spec.Join {
		st, err := p.s.sync.RoomStateAt(ctx, e.RoomID, e.memberPos)
		if err != nil {
			return err
		}
		if err := p.requiredState(ctx, w, st, tl, next, room); err != nil {
			return err
		}
	}
	p.resp.Rooms[e.RoomID] = room
	p.next.rooms[e.RoomID] = next
	return nil
}

// strippedRoom sends an invite or knock once.
func (p *pass) strippedRoom(ctx context.Context, e *entry) error {
	if sent := p.next.rooms[e.RoomID]; sent != nil && sent.membership == e.Membership && sent.memberNID == e.EventNID {
		return nil
	}
	stripped, shown, err := p.s.sync.StrippedState(ctx, p.req.UserID, p.ignored, e.RoomMembership)
	if err != nil || !shown {
		return err
	}
	room := &Room{Initial: true, BumpStamp: e.bump}
	if e.Membership == spec.Invite {
		room.InviteState = stripped
	} else {
		room.KnockState = stripped
	}
	if room.IsDM, err = p.isDM(ctx, e); err != nil {
		return err
	}
	p.resp.Rooms[e.RoomID] = room
	p.next.rooms[e.RoomID] = &sentRoom{membership: e.Membership, memberNID: e.EventNID}
	return nil
}

// joinedRoom sends a joined room whole the first time (initial), then
// what is new: timeline events after what was sent, state the
// connection does not have yet, and counts.
func (p *pass) joinedRoom(ctx context.Context, vis *rooms.Visibility, w *want, active, countsChanged bool) error {
	e := w.e
	sent := p.next.rooms[e.RoomID]
	initial := sent == nil || sent.membership != e.Membership
	reqKey := requiredHash(w.required)
	if !initial && sent.upto != p.after {
		// The room was out of every window for a while: did it move?
		last, err := p.s.store.LastEventAtOrBefore(ctx, e.RoomID, p.upto)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		active = last.StreamPos > sent.upto
	}
	// A larger timeline_limit than the room was last sent with (Element
	// X opening a room through a subscription) resends its recent
	// timeline, as Synapse does, flagged unstable_expanded_timeline.
	expand := !initial && sent.timeline >= 0 && w.timeline > sent.timeline
	if !initial && !active && !countsChanged && !expand && reqKey == sent.required {
		return nil
	}
	room := &Room{Initial: initial, BumpStamp: e.bump}
	next := &sentRoom{membership: e.Membership, memberNID: e.EventNID, state: map[roommodel.StateKey]int64{}, peek: e.Membership == peek,
		timeline: w.timeline}
	after := int64(0)
	if !initial {
		next = sent.clone()
		after = sent.upto
	}
	if expand {
		after = 0
		next.timeline = w.timeline
	}
	next.upto, next.required = p.upto, reqKey
	var tl []*rooms.Event
	if w.timeline > 0 && (initial || active || expand) {
		var err error
		var limited bool
		if tl, limited, room.PrevBatch, err = p.s.sync.RoomTimeline(ctx, p.req.UserID, vis, e.RoomID, after, p.upto, w.timeline); err != nil {
			return err
		}
		room.Limited = limited
		if limited || next.timeline < 0 {
			// The client now holds this timeline (shorter, or the first
			// one recorded): a larger limit later has more to send.
			next.timeline = w.timeline
		}
		live := 0
		if p.prev != nil {
			for _, ev := range tl {
				if ev.StreamPos > p.after {
					live++
				}
			}
		}
		room.NumLive = &live
		if room.Timeline, err = p.s.render.Render(ctx, tl, p.req.Viewer, p.req.UserID, true); err != nil {
			return err
		}
		room.ExpandedTimeline = expand
	}
	m, err := p.meta(ctx, e)
	if err != nil {
		return err
	}
	if err := p.requiredState(ctx, w, m.state, tl, next, room); err != nil {
		return err
	}
	if err := p.describe(ctx, e, m.state, room, initial); err != nil {
		return err
	}
	p.resp.Rooms[e.RoomID] = room
	p.next.rooms[e.RoomID] = next
	return nil
}

// requiredState adds the state the request asks for that the connection
// does not have: the current events of the keys it names ("*" for any
// type or key, "$ME" for the user), and with $LAZY the memberships of
// the timeline's senders. Each is sent once while it stays current.
func (p *pass) requiredState(ctx context.Context, w *want, state rooms.StateMap, tl []*rooms.Event, next *sentRoom, room *Room) error {
	lazy := false
	var nids []int64
	add := func(k roommodel.StateKey, nid int64) {
		if next.state[k] != nid {
			next.state[k] = nid
			nids = append(nids, nid)
		}
	}
	wildcardAll := false
	for _, rs := range w.required {
		if rs[0] == spec.MRoomMember && rs[1] == "$LAZY" {
			lazy = true
		}
		if rs[0] == "*" && rs[1] == "*" {
			wildcardAll = true
		}
	}
	if wildcardAll || len(w.required) > 8 {
		for k, nid := range state {
			if wildcardAll || requiredMatch(w.required, k, p.req.UserID) {
				add(k, nid)
			}
		}
	} else {
		// Few entries, most of them exact: look them up rather than
		// scanning the whole state (a big room has thousands of members).
		for _, rs := range w.required {
			if rs[0] == "*" || rs[1] == "*" {
				for k, nid := range state {
					if requiredMatch([][]string{rs}, k, p.req.UserID) {
						add(k, nid)
					}
				}
				continue
			}
			sk := rs[1]
			if sk == "$ME" {
				sk = p.req.UserID
			}
			k := roommodel.StateKey{Type: rs[0], StateKey: sk}
			if nid, ok := state[k]; ok {
				add(k, nid)
			}
		}
	}
	if lazy {
		for _, ev := range tl {
			k := roommodel.StateKey{Type: spec.MRoomMember, StateKey: ev.Sender()}
			if nid, ok := state[k]; ok {
				add(k, nid)
			}
		}
	}
	if len(nids) == 0 {
		return nil
	}
	slices.Sort(nids)
	evs, err := p.s.engine.EventsByNID(ctx, nids)
	if err != nil {
		return err
	}
	room.RequiredState, err = p.s.render.RenderState(ctx, evs, p.req.Viewer, p.req.UserID, true)
	return err
}

// requiredKey is a required_state in a canonical form, sorted and
// without duplicates, so that lists naming the same keys in another
// order (or several lists covering one room) do not look like a change.
func requiredKey(required [][]string) string {
	keys := make([]string, 0, len(required))
	for _, rs := range required {
		keys = append(keys, rs[0]+"\x00"+rs[1])
	}
	slices.Sort(keys)
	return strings.Join(slices.Compact(keys), "\x01")
}

// requiredMatch reports whether a state key is one a required_state
// list names.
func requiredMatch(required [][]string, k roommodel.StateKey, userID string) bool {
	for _, rs := range required {
		if rs[0] != "*" && rs[0] != k.Type {
			continue
		}
		switch rs[1] {
		case "*", k.StateKey:
			return true
		case "$ME":
			if k.StateKey == userID {
				return true
			}
		}
	}
	return false
}

// describe adds what the room list shows of a room: name, avatar,
// heroes (for a room without a name), member and unread counts, is_dm.
func (p *pass) describe(ctx context.Context, e *entry, state rooms.StateMap, room *Room, initial bool) error {
	var nids []int64
	for _, t := range []string{spec.MRoomName, "m.room.avatar"} {
		if nid, ok := state[roommodel.StateKey{Type: t}]; ok {
			nids = append(nids, nid)
		}
	}
	evs, err := p.s.engine.EventsByNID(ctx, nids)
	if err != nil {
		return err
	}
	for _, ev := range evs {
		var c struct {
			Name string `json:"name"`
			URL  string `json:"url"`
		}
		_ = json.Unmarshal(ev.Content(), &c)
		if ev.Type() == spec.MRoomName {
			room.Name = c.Name
		} else {
			room.Avatar = c.URL
		}
	}
	joined, invited, err := p.s.store.MemberCounts(ctx, e.RoomID)
	if err != nil {
		return err
	}
	room.JoinedCount, room.InvitedCount = &joined, &invited
	if room.Name == "" && initial {
		if room.Heroes, err = p.heroes(ctx, e.RoomID, state); err != nil {
			return err
		}
	}
	if ps := p.s.sync.Streams().Push; ps != nil {
		main, threads, err := ps.UnreadCounts(ctx, p.req.UserID, e.RoomID)
		if err != nil {
			return err
		}
		n, h := int64(main.NotificationCount), int64(main.HighlightCount)
		for _, c := range threads {
			n += int64(c.NotificationCount)
			h += int64(c.HighlightCount)
		}
		room.NotificationCount, room.HighlightCount = &n, &h
	}
	room.IsDM, err = p.isDM(ctx, e)
	return err
}

// heroes are the members (rooms.Heroes' rule, picked by the store
// without listing every member) with their profiles in the room.
func (p *pass) heroes(ctx context.Context, roomID string, state rooms.StateMap) ([]Hero, error) {
	ids, err := p.s.store.RoomHeroes(ctx, roomID, p.req.UserID, rooms.MaxHeroes)
	if err != nil {
		return nil, err
	}
	var nids []int64
	for _, u := range ids {
		if nid, ok := state[roommodel.StateKey{Type: spec.MRoomMember, StateKey: u}]; ok {
			nids = append(nids, nid)
		}
	}
	evs, err := p.s.engine.EventsByNID(ctx, nids)
	if err != nil {
		return nil, err
	}
	profile := map[string]Hero{}
	for _, ev := range evs {
		var c struct {
			DisplayName string `json:"displayname"`
			AvatarURL   string `json:"avatar_url"`
		}
		_ = json.Unmarshal(ev.Content(), &c)
		profile[*ev.StateKey()] = Hero{UserID: *ev.StateKey(), DisplayName: c.DisplayName, AvatarURL: c.AvatarURL}
	}
	out := make([]Hero, 0, len(ids))
	for _, u := range ids {
		h, ok := profile[u]
		if !ok {
			h = Hero{UserID: u}
		}
		out = append(out, h)
	}
	return out, nil
}
