package directory

import (
	"context"
	"errors"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/store"
)

// Whether a room is listed in this server's public room directory, and
// who may change that.

// Published reports whether a room is listed; M_NOT_FOUND for a room this
// server does not know.
func (s *Service) Published(ctx context.Context, roomID string) (bool, error) {
	p, err := s.store.RoomPublished(ctx, roomID)
	if errors.Is(err, store.ErrNotFound) {
		return false, mxerr.NotFound("Room not found")
	}
	return p, err
}

// SetPublished lists a room in (or removes it from) the directory.
func (s *Service) SetPublished(ctx context.Context, roomID string, public bool) error {
	err := s.store.SetRoomPublished(ctx, roomID, public)
	if errors.Is(err, store.ErrNotFound) {
		return mxerr.NotFound("Room not found")
	}
	return err
}

// MayEditListing is Synapse's check for editing a room's directory entry
// or deleting others' aliases: a server admin, or a joined member whose
// power level lets them send m.room.canonical_alias.
func (s *Service) MayEditListing(ctx context.Context, userID string, isAdmin bool, roomID string) (bool, error) {
	if isAdmin {
		return true, nil
	}
	state, err := s.rooms.CurrentState(ctx, roomID)
	if err != nil {
		if _, ok := mxerr.As(err); ok {
			return false, nil
		}
		return false, err
	}
	if m, err := s.rooms.MembershipIn(ctx, state, userID); err != nil || m != spec.Join {
		return false, err
	}
	pl, err := s.rooms.PowerLevels(ctx, state)
	if err != nil {
		return false, err
	}
	return pl.UserLevel(spec.SenderID(userID)) >= pl.EventLevel("m.room.canonical_alias", true), nil
}
