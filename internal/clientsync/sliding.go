package clientsync

import (
	"context"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/clientevent"
	"github.com/myelin-chat/myelin/internal/filter"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// What simplified sliding sync (internal/slidingsync) shares with /sync:
// the notifier, the membership list, timelines, state and stripped
// state, each read the same way so that the two answer alike.

// Notifier is the notifier that wakes long-polls.
func (s *Service) Notifier() *Notifier { return s.notifier }

// Streams are the sources besides rooms (account data, keys, push...).
func (s *Service) Streams() Sources { return s.sources }

// MembershipsAt lists a user's memberships as they were at a readable
// stream position (see membershipsAt).
func (s *Service) MembershipsAt(ctx context.Context, userID string, pos int64) ([]store.RoomMembership, error) {
	return s.membershipsAt(ctx, userID, pos, nil)
}

// ActiveRooms is the set of rooms with events in (after, upto].
func (s *Service) ActiveRooms(ctx context.Context, after, upto int64) (map[string]bool, error) {
	return s.roomsWithEvents(ctx, after, upto)
}

// RoomStateAt is a room's state at a stream position. It asks the
// database each time: sliding sync does not look for completed partial
// states (PartialStateCompleted), which make the shared answers of
// stateAfterAt stale (see forgetStates).
func (s *Service) RoomStateAt(ctx context.Context, roomID string, pos int64) (rooms.StateMap, error) {
	return s.stateFrom(ctx, roomID, pos, s.store.StateAfterAtOrBefore)
}

// RoomTimeline is up to limit events of a room in (after, upto] that the
// user may see, oldest first, whether older ones were left out, and the
// pagination token before the first (as /sync's timeline.prev_batch).
func (s *Service) RoomTimeline(ctx context.Context, userID string, vis *rooms.Visibility, roomID string, after, upto int64, limit int) ([]*rooms.Event, bool, string, error) {
	req := Request{UserID: userID, Filter: &filter.Filter{}}
	req.Filter.Room.Timeline.Limit = &limit
	tl, limited, _, cursor, err := s.timeline(ctx, req, vis, roomID, after, upto)
	if err != nil {
		return nil, false, "", err
	}
	for len(tl) > 0 && outOfBand(tl[0]) {
		tl = tl[1:]
	}
	prev := Token{Events: upto}
	if limited {
		prev = Token{Events: cursor}
	}
	if len(tl) > 0 {
		prev = Token{Events: tl[0].StreamPos - 1}
	}
	return tl, limited, prev.String(), nil
}

// InvitesShown leaves out of ms the invites that sync endpoints must not
// serve to userID (inviteShown): sliding sync counts its lists from
// what is left, so that a hidden invite is not told by a count either.
func (s *Service) InvitesShown(ctx context.Context, userID string, ignored map[string]bool, ms []store.RoomMembership) ([]store.RoomMembership, error) {
	var nids []int64
	for _, m := range ms {
		if m.Membership == spec.Invite {
			nids = append(nids, m.EventNID)
		}
	}
	if len(nids) == 0 {
		return ms, nil
	}
	evs, err := s.engine.EventsByNID(ctx, nids)
	if err != nil {
		return nil, err
	}
	hidden := map[int64]bool{}
	req := Request{UserID: userID, ignored: ignored, invites: &invitePermission{rules: s.sources.Invites, userID: userID}}
	for _, ev := range evs {
		shown, err := s.inviteShown(ctx, req, ev)
		if err != nil {
			return nil, err
		}
		hidden[ev.NID] = !shown
	}
	out := make([]store.RoomMembership, 0, len(ms))
	for _, m := range ms {
		if m.Membership != spec.Invite || !hidden[m.EventNID] {
			out = append(out, m)
		}
	}
	return out, nil
}

// StrippedState is the stripped state of a room a user is invited to or
// knocked on, with the membership event last; shown is false for an
// invite the user ignores or blocks (see strippedRoom).
func (s *Service) StrippedState(ctx context.Context, userID string, ignored map[string]bool, m store.RoomMembership) (stripped []clientevent.Stripped, shown bool, err error) {
	req := Request{UserID: userID, ignored: ignored, invites: &invitePermission{rules: s.sources.Invites, userID: userID}}
	resp := newResponse(Token{})
	if err := s.strippedRoom(ctx, req, resp, m); err != nil {
		return nil, false, err
	}
	if r := resp.Rooms.Invite[m.RoomID]; r != nil && r.InviteState != nil {
		return r.InviteState.Events, true, nil
	}
	if r := resp.Rooms.Knock[m.RoomID]; r != nil && r.KnockState != nil {
		return r.KnockState.Events, true, nil
	}
	return nil, false, nil
}
