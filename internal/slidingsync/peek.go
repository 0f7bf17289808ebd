package slidingsync

import (
	"context"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/ident"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
	"github.com/myelin-chat/myelin/internal/store"
)

// peek is the membership of a room a user is not in but subscribes to
// because it is world-readable: it is sent as a joined room is (state,
// timeline the history visibility lets anyone read), and dropped from
// extensions, which serve the user's own rooms.
//
// Synapse lets a room subscription reach any room the user has had a
// membership in, and does not yet serve world-readable rooms
// (check_room_subscription_allowed_for_user); MSC4186 lets a client
// subscribe to rooms it may peek into, which Myelin serves.
const peek = "org.myelin.peek"

// subscribe adds a room subscription: a room of the user's, or a
// world-readable room the user is not in.
func (p *pass) subscribe(ctx context.Context, entries []*entry, roomID string, cfg RoomConfig) error {
	for _, e := range entries {
		if e.RoomID == roomID {
			p.want(e, cfg, "")
			return nil
		}
	}
	if ident.CheckID(roomID) != nil || len(roomID) == 0 || roomID[0] != '!' {
		return nil
	}
	ok, err := p.canPeek(ctx, roomID)
	if err != nil || !ok {
		return err
	}
	e := &entry{RoomMembership: store.RoomMembership{RoomID: roomID, Membership: peek}}
	rows, err := p.s.store.RoomListEntries(ctx, []string{roomID})
	if err != nil {
		return err
	}
	e.bump = rows[roomID].BumpStamp
	p.want(e, cfg, "")
	return nil
}

// canPeek reports whether the user may read a room's current state
// without being in it: a world-readable room. Answers are kept for the
// pass (the spaces filter asks for each room of a list).
func (p *pass) canPeek(ctx context.Context, roomID string) (bool, error) {
	if ok, known := p.peekable[roomID]; known {
		return ok, nil
	}
	st, err := p.s.sync.RoomStateAt(ctx, roomID, p.upto)
	if err != nil {
		return false, err
	}
	ok, err := p.s.engine.CanPeek(ctx, st)
	if err != nil {
		return false, err
	}
	if p.peekable == nil {
		p.peekable = map[string]bool{}
	}
	p.peekable[roomID] = ok
	return ok, nil
}

// inSpaces reports whether a room is a child (m.space.child) of one of
// the spaces, as the spaces' current state says. A space's state is
// read only when the user may see it: joined to it, or it is
// world-readable; the other spaces match nothing (their children are
// not the user's to learn).
func (p *pass) inSpaces(ctx context.Context, entries []*entry, roomID string, spaces []string) (bool, error) {
	for _, sp := range spaces {
		visible, err := p.spaceVisible(ctx, entries, sp)
		if err != nil {
			return false, err
		}
		if !visible {
			continue
		}
		st, err := p.s.sync.RoomStateAt(ctx, sp, p.upto)
		if err != nil {
			return false, err
		}
		if _, ok := st[roommodel.StateKey{Type: "m.space.child", StateKey: roomID}]; ok {
			return true, nil
		}
	}
	return false, nil
}

func (p *pass) spaceVisible(ctx context.Context, entries []*entry, spaceID string) (bool, error) {
	if p.joined == nil {
		p.joined = map[string]bool{}
		for _, e := range entries {
			if e.Membership == spec.Join {
				p.joined[e.RoomID] = true
			}
		}
	}
	if p.joined[spaceID] {
		return true, nil
	}
	if ident.CheckID(spaceID) != nil {
		return false, nil
	}
	return p.canPeek(ctx, spaceID)
}
