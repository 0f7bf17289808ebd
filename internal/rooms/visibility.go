package rooms

import (
	"context"

	"github.com/matrix-org/gomatrixserverlib/spec"
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
	current map[string]string
}

// VisibilityFor makes the checker for one user and request.
func (e *Engine) VisibilityFor(userID string) *Visibility {
	return &Visibility{e: e, userID: userID, current: map[string]string{}}
}

// CanSee reports whether the user may see ev.
func (v *Visibility) CanSee(ctx context.Context, ev *Event) (bool, error) {
	// The state at the event decides: the state before it, except that a
	// user always sees their own membership changes (so they see their
	// own join and leave).
	snapshot := ev.StateBefore
	if ev.Type() == spec.MRoomMember && ev.StateKey() != nil && *ev.StateKey() == v.userID {
		return true, nil
	}
	state, err := v.e.snapshotState(ctx, snapshot)
	if err != nil {
		return false, err
	}
	hv := Shared
	if hvEv, err := v.e.StateEvent(ctx, state, spec.MRoomHistoryVisibility, ""); err != nil {
		return false, err
	} else if hvEv != nil {
		if val, err := hvEv.HistoryVisibility(); err == nil {
			hv = string(val)
		}
	}
	if hv == WorldReadable {
		return true, nil
	}
	membership, err := v.e.MembershipIn(ctx, state, v.userID)
	if err != nil {
		return false, err
	}
	switch {
	case membership == spec.Join:
		return true, nil
	case hv == Invited && membership == spec.Invite:
		return true, nil
	case hv == Shared:
		cur, err := v.currentMembership(ctx, ev.RoomID().String())
		return cur == spec.Join, err
	}
	return false, nil
}

func (v *Visibility) currentMembership(ctx context.Context, roomID string) (string, error) {
	if m, ok := v.current[roomID]; ok {
		return m, nil
	}
	m, err := v.e.MembershipOf(ctx, roomID, v.userID)
	if err != nil {
		return "", err
	}
	v.current[roomID] = m
	return m, nil
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
