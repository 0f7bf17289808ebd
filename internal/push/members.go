package push

import (
	"context"
	"reflect"
	"slices"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/rooms"
)

// roomMembers are what evaluation needs of a room's members: the joined
// local users, and how many are joined in all (room_member_count).
type roomMembers struct {
	local  []string
	joined int
}

// memberState are a room's members in one state snapshot. The worker
// keeps the latest one per room so that the next snapshot's members
// follow from the member events that differ between the two.
type memberState struct {
	snapshot int64
	state    rooms.StateMap
	// completions is Service.completions when state was read: the same
	// snapshot is the same state unless a partial-state room was
	// completed since.
	completions uint64
	// localJoined are the joined local users, as a set.
	localJoined map[string]bool
	members     roomMembers
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
	// The same snapshot is the same state but for one thing: completing
	// a partial-state room adds the missing state to its snapshots in
	// place, and drops them from the engine's cache, whose next answer is
	// a new map. Without a completion since the members were worked out,
	// the snapshot alone answers: asking the engine for the state first
	// loaded the whole snapshot of a room of 5,000 members whenever the
	// engine's state cache had let it go, for every message of the room.
	// It answers before the partial-state mark is looked up (a query,
	// for every message of a busy room): only snapshots judged with full
	// state are cached, and a room becomes partial only by a join, whose
	// state is a new snapshot.
	completions := s.completions.Load()
	prev, _ := s.memberCache.Get(roomID)
	if prev != nil && prev.snapshot == ev.StateAfter && prev.completions == completions {
		return prev.members, nil
	}
	// A room joined with partial state stores, at its events, only the
	// members the send_join answer kept: the others are missing, not
	// gone, until the resync completes. The current members are the
	// best known then.
	if partial, _, err := s.rooms.PartialState(ctx, roomID); err != nil {
		return roomMembers{}, err
	} else if partial {
		return s.currentMembers(ctx, roomID)
	}
	state, err := s.rooms.StateAt(ctx, ev.StateAfter)
	if err != nil {
		return roomMembers{}, err
	}
	// After a completion, a base of before it is still right for the map
	// it holds (maps are never changed): what the completion added shows
	// as a difference.
	if prev != nil && prev.snapshot == ev.StateAfter && sameMap(prev.state, state) {
		return prev.members, nil
	}
	next, err := s.membersOf(ctx, ev.StateAfter, state, prev)
	if err != nil {
		return roomMembers{}, err
	}
	next.completions = completions
	s.memberCache.PutCost(roomID, next, memberStateCost(next))
	return next.members, nil
}

// membersOf works out the members of a state, from base's when there
// is one (a state of the same room): only the member events that differ
// are loaded, the one each state holds, to tell who joined or stopped
// being joined.
func (s *Service) membersOf(ctx context.Context, snapshot int64, state rooms.StateMap, base *memberState) (*memberState, error) {
	out := &memberState{snapshot: snapshot, state: state, localJoined: map[string]bool{}}
	var before rooms.StateMap
	if base != nil {
		before = base.state
		out.members.joined = base.members.joined
		for u := range base.localJoined {
			out.localJoined[u] = true
		}
	}
	type change struct {
		user     string
		was, now int64
	}
	var changes []change
	var nids []int64
	for k, nid := range state {
		if k.Type == spec.MRoomMember && before[k] != nid {
			changes = append(changes, change{k.StateKey, before[k], nid})
			nids = append(nids, before[k], nid)
		}
	}
	// State resolution may leave a member out of a later state.
	for k, nid := range before {
		if _, kept := state[k]; !kept && k.Type == spec.MRoomMember {
			changes = append(changes, change{k.StateKey, nid, 0})
			nids = append(nids, nid)
		}
	}
	if len(changes) == 0 {
		if base != nil {
			out.members.local = base.members.local
		}
		return out, nil
	}
	evs, err := s.rooms.EventsByNID(ctx, slices.DeleteFunc(nids, func(n int64) bool { return n == 0 }))
	if err != nil {
		return nil, err
	}
	joinedBy := make(map[int64]bool, len(evs))
	for _, ev := range evs {
		m, _ := ev.Membership()
		joinedBy[ev.NID] = m == spec.Join
	}
	local := ":" + s.opts.ServerName
	for _, c := range changes {
		was, now := joinedBy[c.was], joinedBy[c.now]
		if was == now {
			continue
		}
		if now {
			out.members.joined++
		} else {
			out.members.joined--
		}
		if strings.HasSuffix(c.user, local) {
			if now {
				out.localJoined[c.user] = true
			} else {
				delete(out.localJoined, c.user)
			}
		}
	}
	for u := range out.localJoined {
		out.members.local = append(out.members.local, u)
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

// sameMap reports whether a and b are the one map.
func sameMap(a, b rooms.StateMap) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}
