package rooms

import (
	"context"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
)

// History visibility values.
const (
	WorldReadable = "world_readable"
	Shared        = "shared"
	Invited       = "invited"
	Joined        = "joined"
)

// Visibility decides which events a user may see, following the spec's
// "History visibility" rules. It caches the user's current membership per
// room, so one Visibility serves one request.
type Visibility struct {
	e       *Engine
	userID  string
	joins   map[string]joinInfo
	ignored map[string]bool // loaded on first use
	// listed remembers, per sender, whether the reputation feeds hide
	// their events, for the request's lifetime.
	listed map[string]bool
	// filtered remembers, per sender, the feeds of the user's own
	// reputation filter that hide their events.
	filtered map[string][]string
}

// joinInfo is what a Visibility caches about the user's joins to a room.
type joinInfo struct {
	current  bool  // joined now
	lastJoin int64 // stream position of the latest join
}

// VisibilityFor makes the checker for one user and request.
func (e *Engine) VisibilityFor(userID string) *Visibility {
	return &Visibility{e: e, userID: userID, joins: map[string]joinInfo{}, listed: map[string]bool{}, filtered: map[string][]string{}}
}

// CanSee reports whether the user may see ev.
func (v *Visibility) CanSee(ctx context.Context, ev *Event) (bool, error) {
	// Soft-failed and rejected events are never shown to clients, and
	// outliers (no stream position, no state) only when they are the
	// user's own out-of-band membership, such as a remote invite: Synapse's
	// filter_events_for_client. Event loads by ID (/event, /context,
	// /relations' parent, receipts) reach such events; stream queries
	// never do.
	if ev.Status != roommodel.Accepted {
		return false, nil
	}
	if v.e.hiddenByReputation(ctx, ev, v.listed) {
		return false, nil
	}
	if v.e.filteredFor(ctx, v.userID, ev, v.filtered) != nil && !ShowFiltered(ctx) {
		return false, nil
	}
	if hidden, err := v.ignores(ctx, ev); hidden || err != nil {
		return false, err
	}
	if ev.StreamPos == 0 {
		return ev.Type() == spec.MRoomMember && ev.StateKey() != nil && *ev.StateKey() == v.userID, nil
	}
	// The state at the event decides: the state before it, except for the
	// user's own membership events, visible if the membership before or
	// after allows (spec "History visibility"; so a user sees their join
	// and their leave from join), and, as Synapse, for a leave after an
	// invite, so that a user sees the room go when they reject an invite.
	if ev.Type() == spec.MRoomMember && ev.StateKey() != nil && *ev.StateKey() == v.userID {
		if ok, err := v.canSeeAt(ctx, ev, ev.StateBefore); ok || err != nil {
			return ok, err
		}
		if m, _ := ev.Membership(); m == spec.Leave {
			if prev, err := v.e.membershipAt(ctx, ev.StateBefore, v.userID); err != nil || prev == spec.Invite {
				return err == nil, err
			}
		}
		return v.canSeeAt(ctx, ev, ev.StateAfter)
	}
	// An m.room.history_visibility event is visible if the visibility
	// before or after it allows (spec "History visibility").
	if ev.Type() == spec.MRoomHistoryVisibility && ev.StateKey() != nil && *ev.StateKey() == "" && ev.StateAfter != ev.StateBefore {
		if ok, err := v.canSeeAt(ctx, ev, ev.StateBefore); ok || err != nil {
			return ok, err
		}
		return v.canSeeAt(ctx, ev, ev.StateAfter)
	}
	return v.canSeeAt(ctx, ev, ev.StateBefore)
}

// ignores reports whether ev is hidden from the user because they ignore
// its sender: every read path (sync, messages, context, event, relations
// and aggregations, threads, search) asks CanSee, so this is the one
// place the rule lives. Only non-state events are hidden; state events
// stay, since the room's state depends on them (spec "Ignoring Users";
// Synapse's filter_events_for_client).
func (v *Visibility) ignores(ctx context.Context, ev *Event) (bool, error) {
	if ev.IsState() || v.e.opts.Ignored == nil || v.userID == "" {
		return false, nil
	}
	if v.ignored == nil {
		m, err := v.e.opts.Ignored.IgnoredUsers(ctx, v.userID)
		if err != nil {
			return false, err
		}
		if m == nil {
			m = map[string]bool{}
		}
		v.ignored = m
	}
	return IgnoredSender(ev, v.ignored), nil
}

// IgnoredSender reports whether ev is hidden from a user who ignores the
// users in ignored: a non-state event of one of them.
func IgnoredSender(ev *Event, ignored map[string]bool) bool {
	return !ev.IsState() && ignored[ev.Sender()]
}

// canSeeAt applies the visibility rules with the room state of snapshot,
// of which they need two keys (stateKeyAt), not the whole state.
func (v *Visibility) canSeeAt(ctx context.Context, ev *Event, snapshot int64) (bool, error) {
	hv := Shared
	if hvEv, err := v.e.stateEventAt(ctx, snapshot, spec.MRoomHistoryVisibility, ""); err != nil {
		return false, err
	} else if hvEv != nil {
		if val, err := hvEv.HistoryVisibility(); err == nil {
			hv = string(val)
		}
	}
	if hv == WorldReadable {
		return true, nil
	}
	membership, err := v.e.membershipAt(ctx, snapshot, v.userID)
	if err != nil {
		return false, err
	}
	switch {
	case membership == spec.Join:
		return true, nil
	case hv == Invited && membership == spec.Invite:
		return true, nil
	case hv == Shared:
		// The user joined at some point after the event (the spec's rule 3),
		// so a former member keeps the shared history they could see.
		return v.joinedAfter(ctx, ev.RoomID().String(), ev.StreamPos)
	}
	return false, nil
}

// joinedAfter reports whether the user is joined to the room now or
// joined it after stream position pos.
func (v *Visibility) joinedAfter(ctx context.Context, roomID string, pos int64) (bool, error) {
	j, ok := v.joins[roomID]
	if !ok {
		cur, err := v.e.MembershipOf(ctx, roomID, v.userID)
		if err != nil {
			return false, err
		}
		j.current = cur == spec.Join
		if j.lastJoin, err = v.e.store.LastJoinPos(ctx, roomID, v.userID); err != nil {
			return false, err
		}
		v.joins[roomID] = j
	}
	return j.current || j.lastJoin > pos, nil
}

// Filter keeps the events the user may see, in order.
func (v *Visibility) Filter(ctx context.Context, evs []*Event) ([]*Event, error) {
	out := evs[:0:0]
	for _, ev := range evs {
		ok, err := v.CanSee(ctx, ev)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, ev)
		}
	}
	return out, nil
}

// First is the first of evs the user may see; nil when none.
func (v *Visibility) First(ctx context.Context, evs []*Event) (*Event, error) {
	for _, ev := range evs {
		ok, err := v.CanSee(ctx, ev)
		if err != nil || ok {
			return ev, err
		}
	}
	return nil, nil
}

// CanPeek reports whether a non-member may read the room's current state
// and history: only world-readable rooms allow it.
func (e *Engine) CanPeek(ctx context.Context, state StateMap) (bool, error) {
	hvEv, err := e.StateEvent(ctx, state, spec.MRoomHistoryVisibility, "")
	if err != nil || hvEv == nil {
		return false, err
	}
	val, err := hvEv.HistoryVisibility()
	return err == nil && string(val) == WorldReadable, nil
}
