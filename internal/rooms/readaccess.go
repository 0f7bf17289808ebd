package rooms

import (
	"context"
	"encoding/json"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/mxerr"
)

// The room-level half of "may this user see this?": which part of a
// room's state and timeline a user may read at all. The event-level half
// is Visibility; every client read path asks both here, so that /state,
// /members, /messages, /context, /relations, threads, search, /event and
// /initialSync give one answer.

// Two kinds of read ask it differently. Walks of the timeline (/messages,
// /context, /threads, /initialSync) page only up to a former member's
// leave (UpTo), as Synapse's /messages clamps its token there. Lookups of
// one event and what relates to it (/event, /relations) ask Visibility
// alone, as Synapse's do: in a world-readable room a former member may
// fetch an event sent after they left, though no page leads to it.

// ReadAccess is what a user may read of a room now.
type ReadAccess struct {
	// Membership is the user's current membership, "" when none.
	Membership string
	// State is the state the user may read: the current state while
	// joined or peeking into a world-readable room, the state at their
	// leave after leaving.
	State StateMap
	// Current reports whether State is the room's current state.
	Current bool
	// LeftAt is the stream position of a former member's leave, the last
	// position of the timeline they may read; 0 when Current.
	LeftAt int64
}

// UpTo is the last stream position of the timeline the user may page to,
// given the stream's current position.
func (r ReadAccess) UpTo(current int64) int64 {
	if r.Current {
		return current
	}
	return r.LeftAt
}

// errNotInRoom is the answer to a user who may read nothing of a room.
func errNotInRoom() error { return mxerr.Forbidden("You are not in this room") }

// ReadAccess decides what a user may read of a room, as Synapse's
// check_user_in_room_or_world_readable with allow_departed_users: members
// read everything; former members (left or banned) what the room held
// when they left (spec "GET /rooms/{roomId}/state": "If the user has
// left the room then the state is taken from the state of the room when
// they left"); anyone else only a world-readable room. A room this server
// does not know, or a user with no access, gets M_FORBIDDEN.
func (e *Engine) ReadAccess(ctx context.Context, roomID, userID string) (ReadAccess, error) {
	state, err := e.CurrentState(ctx, roomID)
	if err != nil {
		if _, ok := mxerr.As(err); ok {
			return ReadAccess{}, errNotInRoom()
		}
		return ReadAccess{}, err
	}
	m, err := e.MembershipIn(ctx, state, userID)
	if err != nil {
		return ReadAccess{}, err
	}
	switch m {
	case spec.Join:
		return ReadAccess{Membership: m, State: state, Current: true}, nil
	case spec.Leave, spec.Ban:
		// A former member who forgot the room gave up reading its
		// history: only a world-readable room stays open to them, as
		// in Synapse (did_forget in check_user_in_room_or_world_readable).
		forgot, err := e.store.RoomForgotten(ctx, userID, roomID)
		if err != nil {
			return ReadAccess{}, err
		}
		if forgot {
			break
		}
		ev, err := e.StateEvent(ctx, state, spec.MRoomMember, userID)
		if err != nil {
			return ReadAccess{}, err
		}
		left, err := e.StateAt(ctx, ev.StateAfter)
		if err != nil {
			return ReadAccess{}, err
		}
		return ReadAccess{Membership: m, State: left, LeftAt: ev.StreamPos}, nil
	}
	if ok, err := e.CanPeek(ctx, state); err != nil {
		return ReadAccess{}, err
	} else if ok {
		return ReadAccess{Membership: m, State: state, Current: true}, nil
	}
	return ReadAccess{}, errNotInRoom()
}

// MayReadCurrent refuses a user who may not read the room's current
// state: only members and, in a world-readable room, anyone. Former
// members may not: it answers questions about the room now (its
// aliases), as Synapse's check_user_in_room_or_world_readable without
// allow_departed_users.
func (e *Engine) MayReadCurrent(ctx context.Context, roomID, userID string) error {
	state, err := e.CurrentState(ctx, roomID)
	if err != nil {
		if _, ok := mxerr.As(err); ok {
			return errNotInRoom()
		}
		return err
	}
	if m, err := e.MembershipIn(ctx, state, userID); err != nil || m == spec.Join {
		return err
	}
	if ok, err := e.CanPeek(ctx, state); err != nil || ok {
		return err
	}
	return errNotInRoom()
}

// VisibleEvent loads an event of a room that the user may see;
// M_NOT_FOUND otherwise (unknown, of another room, or hidden by
// Visibility), so that hidden events are indistinguishable from missing
// ones.
func (e *Engine) VisibleEvent(ctx context.Context, roomID, eventID, userID string) (*Event, error) {
	ev, err := e.Event(ctx, eventID)
	if err != nil {
		return nil, err
	}
	if ev.RoomID().String() != roomID {
		return nil, mxerr.NotFound("Event not found")
	}
	ok, err := e.VisibilityFor(userID).CanSee(ctx, ev)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, mxerr.NotFound("Event not found")
	}
	return ev, nil
}

// GuestAccessEvent is the state event that lets guests join a room.
const GuestAccessEvent = "m.room.guest_access"

// GuestsCanJoin reports whether an m.room.guest_access content lets
// guests join: only "can_join" does (spec "Guest Access").
func GuestsCanJoin(content []byte) bool {
	var c struct {
		GuestAccess string `json:"guest_access"`
	}
	return json.Unmarshal(content, &c) == nil && c.GuestAccess == "can_join"
}

// GuestsMayJoin reports whether the room's current state lets guests
// join. A room this server is not in has no state to tell, so guests
// cannot join it, as in Synapse.
func (e *Engine) GuestsMayJoin(ctx context.Context, roomID string) (bool, error) {
	state, err := e.CurrentState(ctx, roomID)
	if err != nil {
		if _, ok := mxerr.As(err); ok {
			return false, nil
		}
		return false, err
	}
	ev, err := e.StateEvent(ctx, state, GuestAccessEvent, "")
	if err != nil || ev == nil {
		return false, err
	}
	return GuestsCanJoin(ev.Content()), nil
}
