package push

import (
	"context"
	"slices"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
)

// roomMembers are what evaluation needs of a room's members: the joined
// local users, and how many are joined in all (room_member_count).
type roomMembers struct {
	local  []string
	joined int
}

// memberState are a room's joined members in one state snapshot. The
// worker keeps the latest one per room so that the next snapshot's
// members follow from the member events that differ between the two.
type memberState struct {
	snapshot int64
	state    rooms.StateMap
	// joinedNIDs are the member events of joined users, by user.
	joinedNIDs map[string]int64
	members    roomMembers
}

// members are the room's members an event is judged against: those of
// the state after the event, as Synapse computes push actions before it
// persists the event. The room's current members would not do: the
// worker runs behind the events, and a user who joined after an event
// but before its evaluation would be notified of it (and one who left
// after it skipped). A message in a busy room shares its snapshot with
// the messages before it, so the cache answers; a membership change
// costs a walk of the state map and the loading of the changed members'
// events, not of every member's.
func (s *Service) members(ctx context.Context, ev *rooms.Event) (roomMembers, error) {
	roomID := ev.RoomID().String()
	if !ev.HasState() {
		// No state is known around the event (an outlier): the room's
		// current members are the only answer there is.
		return s.currentMembers(ctx, roomID)
	}
	prev, ok := s.memberCache.Get(roomID)
	if ok && prev.snapshot == ev.StateAfter {
		return prev.members, nil
	}
	state, err := s.rooms.StateAt(ctx, ev.StateAfter)
	if err != nil {
		return roomMembers{}, err
	}
	var base *memberState
	if ok {
		base = prev
	}
	next, err := s.membersOf(ctx, ev.StateAfter, state, base)
	if err != nil {
		return roomMembers{}, err
	}
	s.memberCache.PutCost(roomID, next, len(next.joinedNIDs)+1)
	return next.members, nil
}

// membersOf works out the joined members of a state, from base's when
// there is one (a state of the same room).
func (s *Service) membersOf(ctx context.Context, snapshot int64, state rooms.StateMap, base *memberState) (*memberState, error) {
	var changed []int64
	joined := map[string]int64{}
	if base == nil {
		for k, nid := range state {
			if k.Type == spec.MRoomMember {
				changed = append(changed, nid)
			}
		}
	} else {
		joined = make(map[string]int64, len(base.joinedNIDs)+1)
		for u, nid := range base.joinedNIDs {
			joined[u] = nid
		}
		for k, nid := range state {
			if k.Type == spec.MRoomMember && base.state[k] != nid {
				delete(joined, k.StateKey)
				changed = append(changed, nid)
			}
		}
		// State resolution may leave a member out of a later state.
		for k := range base.state {
			if _, kept := state[k]; !kept && k.Type == spec.MRoomMember {
				delete(joined, k.StateKey)
			}
		}
	}
	if len(changed) > 0 {
		evs, err := s.rooms.EventsByNID(ctx, changed)
		if err != nil {
			return nil, err
		}
		for _, m := range evs {
			if mem, _ := m.Membership(); mem == spec.Join && m.StateKey() != nil && state[roommodel.StateKey{Type: spec.MRoomMember, StateKey: *m.StateKey()}] == m.NID {
				joined[*m.StateKey()] = m.NID
			}
		}
	}
	out := &memberState{snapshot: snapshot, state: state, joinedNIDs: joined, members: roomMembers{joined: len(joined)}}
	local := ":" + s.opts.ServerName
	for u := range joined {
		if strings.HasSuffix(u, local) {
			out.members.local = append(out.members.local, u)
		}
	}
	// In a stable order, as the store lists them: notifications are
	// stored and delivered in it.
	slices.Sort(out.members.local)
	return out, nil
}

// currentMembers are a room's members in its current state.
func (s *Service) currentMembers(ctx context.Context, roomID string) (roomMembers, error) {
	all, err := s.store.JoinedMembers(ctx, roomID)
	if err != nil {
		return roomMembers{}, err
	}
	m := roomMembers{joined: len(all)}
	local := ":" + s.opts.ServerName
	for _, u := range all {
		if strings.HasSuffix(u, local) {
			m.local = append(m.local, u)
		}
	}
	return m, nil
}
