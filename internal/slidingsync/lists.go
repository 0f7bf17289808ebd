package slidingsync

import (
	"context"
	"encoding/json"
	"slices"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
)

// pass is the computation of one answer.
type pass struct {
	s       *Service
	req     Request
	prev    *snapshot
	next    *snapshot
	resp    *Response
	ignored map[string]bool
	// after and upto: the answer covers (after, upto]; after is 0 for a
	// new connection.
	after, upto int64
	// wanted are the rooms in the lists' ranges or subscribed to, with
	// the union of what is asked of each (as Synapse combines them).
	wanted map[string]*want
	order  []string
	direct map[string]bool // m.direct rooms, loaded on first use
	// entries are the user's rooms; joined and peekable answer, for the
	// spaces filter and peeking, which rooms the user may read.
	entries  []*entry
	joined   map[string]bool
	peekable map[string]bool
}

type want struct {
	e        *entry
	timeline int
	required [][]string
	// lists are the lists whose ranges hold the room, subscribed whether
	// a room subscription names it: what an extension's lists and rooms
	// scope by (see inScope).
	lists      []string
	subscribed bool
}

// want adds a room to the answer, from a list (by its name) or from a
// room subscription (list "").
func (p *pass) want(e *entry, cfg RoomConfig, list string) {
	if p.wanted == nil {
		p.wanted = map[string]*want{}
	}
	w, ok := p.wanted[e.RoomID]
	if !ok {
		w = &want{e: e}
		p.wanted[e.RoomID] = w
		p.order = append(p.order, e.RoomID)
	}
	w.timeline = max(w.timeline, cfg.TimelineLimit)
	w.required = append(w.required, cfg.RequiredState...)
	if list == "" {
		w.subscribed = true
	} else if !slices.Contains(w.lists, list) {
		w.lists = append(w.lists, list)
	}
}

// lists counts each list's rooms and takes those in its ranges.
func (p *pass) lists(ctx context.Context, entries []*entry) error {
	for _, l := range p.req.Lists {
		if f := l.Filters; f != nil && (f.RoomTypes != nil || f.NotRoomTypes != nil) {
			if err := p.loadRoomTypes(ctx, entries); err != nil {
				return err
			}
			break
		}
	}
	for name, l := range p.req.Lists {
		n := 0
		for _, e := range entries {
			ok, err := p.matches(ctx, e, l.Filters)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			for _, r := range l.Ranges {
				if int64(n) >= r[0] && int64(n) <= r[1] {
					p.want(e, l.RoomConfig, name)
					break
				}
			}
			n++
		}
		p.resp.Lists[name] = ListResult{Count: n}
		p.next.counts[name] = n
		if p.prev == nil || p.prev.counts[name] != n {
			p.resp.changed = true
		}
	}
	return nil
}

// roomMeta is what filters and answers read of a room's current state.
type roomMeta struct {
	state     rooms.StateMap
	roomType  *string
	encrypted bool
}

// meta loads a room's current state (joined rooms) or reads its
// stripped state (invites and knocks).
func (p *pass) meta(ctx context.Context, e *entry) (*roomMeta, error) {
	if e.meta != nil {
		return e.meta, nil
	}
	m := &roomMeta{}
	if e.Membership == spec.Join || e.Membership == peek {
		st, err := p.s.sync.RoomStateAt(ctx, e.RoomID, p.upto)
		if err != nil {
			return nil, err
		}
		m.state = st
		_, m.encrypted = st[roommodel.StateKey{Type: spec.MRoomEncryption}]
		if m.roomType, err = p.roomType(ctx, e); err != nil {
			return nil, err
		}
	} else {
		// Before joining, only the stripped state tells.
		stripped, _, err := p.s.sync.StrippedState(ctx, p.req.UserID, p.ignored, e.RoomMembership)
		if err != nil {
			return nil, err
		}
		for _, st := range stripped {
			switch st.Type {
			case spec.MRoomEncryption:
				m.encrypted = true
			case spec.MRoomCreate:
				m.roomType = createType(st.Content)
			}
		}
	}
	e.meta = m
	return m, nil
}

// roomType is the type of a room (nil: none).
func (p *pass) roomType(ctx context.Context, e *entry) (*string, error) {
	if e.Membership != spec.Join && e.Membership != peek {
		m, err := p.meta(ctx, e)
		if err != nil {
			return nil, err
		}
		return m.roomType, nil
	}
	if t, ok := p.s.roomTypes.Get(e.RoomID); ok {
		return t, nil
	}
	var st rooms.StateMap
	if e.meta != nil {
		st = e.meta.state
	} else {
		var err error
		if st, err = p.s.sync.RoomStateAt(ctx, e.RoomID, p.upto); err != nil {
			return nil, err
		}
	}
	var t *string
	if nid, ok := st[roommodel.StateKey{Type: spec.MRoomCreate}]; ok {
		evs, err := p.s.engine.EventsByNID(ctx, []int64{nid})
		if err != nil {
			return nil, err
		}
		if len(evs) > 0 {
			t = createType(evs[0].Content())
		}
		p.s.roomTypes.PutCost(e.RoomID, t, roomTypeCost(e.RoomID, t))
	}
	return t, nil
}

func createType(content []byte) *string {
	var c struct {
		Type *string `json:"type"`
	}
	_ = json.Unmarshal(content, &c)
	return c.Type
}

// isDM reports whether a room is a direct chat: listed in the user's
// m.direct account data, or an invite marked is_direct (as Synapse).
func (p *pass) isDM(ctx context.Context, e *entry) (bool, error) {
	if p.direct == nil {
		p.direct = map[string]bool{}
		if ad := p.s.sync.Streams().AccountData; ad != nil {
			raw, err := ad.Get(ctx, p.req.UserID, "", "m.direct")
			if err == nil && raw != nil {
				var d map[string][]string
				_ = json.Unmarshal(raw, &d)
				for _, ids := range d {
					for _, id := range ids {
						p.direct[id] = true
					}
				}
			}
		}
	}
	if p.direct[e.RoomID] {
		return true, nil
	}
	if e.Membership == spec.Invite {
		evs, err := p.s.engine.EventsByNID(ctx, []int64{e.EventNID})
		if err != nil || len(evs) == 0 {
			return false, err
		}
		var c struct {
			IsDirect bool `json:"is_direct"`
		}
		_ = json.Unmarshal(evs[0].Content(), &c)
		return c.IsDirect, nil
	}
	return false, nil
}

// matches applies a list's filters to a room.
func (p *pass) matches(ctx context.Context, e *entry, f *Filters) (bool, error) {
	if f == nil {
		return true, nil
	}
	if f.IsInvite != nil && *f.IsInvite != (e.Membership == spec.Invite) {
		return false, nil
	}
	if f.IsDM != nil {
		dm, err := p.isDM(ctx, e)
		if err != nil || dm != *f.IsDM {
			return false, err
		}
	}
	if f.IsEncrypted != nil {
		m, err := p.meta(ctx, e)
		if err != nil {
			return false, err
		}
		if m.encrypted != *f.IsEncrypted {
			return false, nil
		}
	}
	if f.RoomTypes != nil || f.NotRoomTypes != nil {
		rt, err := p.roomType(ctx, e)
		if err != nil {
			return false, err
		}
		// A null in room_types or not_room_types stands for rooms
		// without a type.
		sameType := func(t *string) bool {
			return (t == nil && rt == nil) || (t != nil && rt != nil && *t == *rt)
		}
		if f.RoomTypes != nil && !slices.ContainsFunc(f.RoomTypes, sameType) {
			return false, nil
		}
		if slices.ContainsFunc(f.NotRoomTypes, sameType) {
			return false, nil
		}
	}
	if len(f.Tags) > 0 || len(f.NotTags) > 0 {
		ad := p.s.sync.Streams().AccountData
		if ad != nil {
			tags, err := ad.Tags(ctx, p.req.UserID, e.RoomID)
			if err != nil {
				return false, err
			}
			for _, t := range f.NotTags {
				if _, ok := tags[t]; ok {
					return false, nil
				}
			}
			if len(f.Tags) > 0 && !slices.ContainsFunc(f.Tags, func(t string) bool { _, ok := tags[t]; return ok }) {
				return false, nil
			}
		} else if len(f.Tags) > 0 {
			return false, nil
		}
	}
	if len(f.Spaces) > 0 {
		in, err := p.inSpaces(ctx, p.entries, e.RoomID, f.Spaces)
		if err != nil || !in {
			return false, err
		}
	}
	return true, nil
}
